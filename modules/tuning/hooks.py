"""keras-tuner hooks for the search: a line and a run record per trial, a live status, a budget.

`modules.tuner.make_tuner` mixes `SearchHooks` into the keras-tuner class it
picks, with its settings as constructor arguments. It uses keras-tuner's own
hooks (on_search_begin, pre_create_trial, on_trial_begin, on_batch_end,
on_epoch_end, on_trial_end), so the search loop stays keras-tuner's.

- Progress: as each trial ends, one line (`trial n/N: ... eta ...`) on the
  console (modules/runtime/console.py); each trial's duration and epochs go to
  `run.json` in its trial folder, which the tuning report reads. While a trial
  trains, a status (`trial n/N epoch e/E val_accuracy ... eta ...`) that a
  terminal shows on one updating line. `SearchProgress` (search_progress.py) counts, so
  a parallel search's chief, which sees its workers' trials only through the
  oracle, makes the same lines (tfx_pipeline/parallel/chief.py).
- Pruning: with `report_epochs`, each epoch's metrics go to the oracle
  (`update_trial`), which answers STOPPED for a trial to prune
  (modules/tuning/pruning.py); its training stops there, and the line and
  `run.json` say `pruned at epoch N`.
- Stopping: a Ctrl-C of the local run is honoured before each trial and
  between batches (modules/runtime/stop.py), so the running trial is abandoned and
  resumed by the next run.
- Disk: checkpoints no later trial or the best model needs are deleted as
  each trial ends (modules/tuning/checkpoints.py).
- Memory: what a trial's traced train step left in TensorFlow's global
  gradient registry is forgotten as the trial ends
  (modules/runtime/gradient_registry.py), so a long search stays flat.
- Budget: once `budget_minutes` of this run are spent, no new trial starts and
  the best so far stands. keras-tuner ends its search loop when the oracle
  answers a trial request with STOPPED, which it does once `oracle.max_trials`
  trials exist; lowering `max_trials` to the trials so far ends the search the
  supported way, and TFX's Tuner executor then writes the best trial. The
  budget counts from the start of this run, so a rerun resumes the search with
  a fresh budget. A parallel search's chief keeps the same `TuningBudget`
  (tfx_pipeline/parallel/chief.py): its workers' oracles are remote.
"""

from __future__ import annotations

import json
import os
import time
from typing import Callable, Optional

import numpy as np

from modules.runtime import console, gradient_registry, stop, whole_file
from modules.search.search_space import OBJECTIVE
from modules.tuning import checkpoints, pruning
from modules.tuning.search_progress import SearchProgress, TuningBudget

RUN_FILE = 'run.json'
# In a running trial's folder: its epochs so far and latest objective value, for a
# parallel search's chief, which cannot see its workers' epochs otherwise.
EPOCHS_FILE = 'epochs.json'
# How often, at most, a batch redraws the status (its elapsed time).
_STATUS_SECONDS = 1.0


class SearchHooks:
  """Mixin for a keras-tuner Tuner: progress lines and status, run records, budget, stopping.

  `total_epochs` is the search's planned epochs in all (None: no ETA);
  `fit_epochs` the epochs of a trial that is not Hyperband's (its `fit` is told).
  """

  def __init__(
    self,
    *args,
    total_epochs: Optional[int] = None,
    fit_epochs: int = 1,
    budget_minutes: Optional[float] = None,
    report_epochs: bool = False,
    echo: Callable[[str], None] = console.line,
    **kwargs,
  ):
    self.progress = SearchProgress(total_epochs, fit_epochs)
    self.budget = TuningBudget(budget_minutes)
    self.report_epochs = report_epochs
    self.checkpoint_bytes_freed = 0  # By this run's checkpoint deletion.
    self.echo = echo
    self._pruned_at = {}
    super().__init__(*args, **kwargs)

  @property
  def total_epochs(self) -> Optional[int]:
    return self.progress.total_epochs

  def search(self, *fit_args, **fit_kwargs):
    self.progress.fit_epochs = fit_kwargs.get('epochs', 1)
    return super().search(*fit_args, **fit_kwargs)

  def on_search_begin(self):
    super().on_search_begin()
    self.progress.start()
    self.budget.start()
    self._status_shown = 0.0

  def pre_create_trial(self):
    super().pre_create_trial()
    stop.check()
    # A worker of a parallel search has a remote oracle: its chief keeps the budget.
    if hasattr(self.oracle, 'trials'):
      line = self.budget.stop_if_spent(self.oracle)
      if line:
        self.echo(line)

  def on_trial_begin(self, trial):
    super().on_trial_begin(trial)
    self.progress.trial_began(trial.trial_id)
    self._value = None
    self._gradients = gradient_registry.names()
    if hasattr(self.oracle, 'trials'):
      self._show_status(trial)
    else:  # A retried trial's folder may hold an earlier attempt's epochs.
      self._write_epochs(trial)

  def on_batch_end(self, trial, model, batch, logs=None):
    super().on_batch_end(trial, model, batch, logs)
    stop.check()  # Honours a stop request that a lost KeyboardInterrupt did not.
    if time.monotonic() - self._status_shown >= _STATUS_SECONDS:
      self._show_status(trial)

  def on_epoch_end(self, trial, model, epoch, logs=None):
    super().on_epoch_end(trial, model, epoch, logs)
    self.progress.epoch_ended(trial.trial_id)
    self._value = (logs or {}).get(OBJECTIVE, self._value)
    if self.report_epochs and logs and OBJECTIVE in logs:
      metrics = {k: float(v) for k, v in logs.items() if isinstance(v, (int, float, np.number))}
      answer = self.oracle.update_trial(trial.trial_id, metrics, step=epoch)
      if getattr(answer, 'status', None) == pruning.STOPPED:
        model.stop_training = True
        self._pruned_at[trial.trial_id] = epoch + 1
    if hasattr(self.oracle, 'trials'):
      self._show_status(trial)
    else:
      self._write_epochs(trial)

  def _write_epochs(self, trial) -> None:
    """For a parallel search's chief: this trial's epochs so far, and its latest objective."""
    write_json(
      os.path.join(self.get_trial_dir(trial.trial_id), EPOCHS_FILE),
      {'epochs': self.progress.epochs(trial.trial_id), 'value': self._value},
    )

  def _show_status(self, trial) -> None:
    self._status_shown = time.monotonic()
    # Only where the oracle is local: a parallel search's chief shows its workers' status.
    if hasattr(self.oracle, 'trials'):
      console.status(self.progress.status(trial, self.oracle, self._value))

  def on_trial_end(self, trial):
    super().on_trial_end(trial)  # The oracle scores the trial here.
    gradient_registry.forget_since(self._gradients)
    if hasattr(self.oracle, 'trials'):
      # A worker of a parallel search has a remote oracle: its chief deletes them.
      self.checkpoint_bytes_freed += checkpoints.prune(self.oracle, self._get_checkpoint_fname)
    ended = self.oracle.get_trial(trial.trial_id)
    record = self.progress.trial_ended(ended)
    pruned_at = self._pruned_at.pop(trial.trial_id, None)
    if pruned_at is not None:
      record['pruned_at_epoch'] = pruned_at
    write_json(os.path.join(self.get_trial_dir(trial.trial_id), RUN_FILE), record)
    console.status(None)
    self.echo(self.progress.line(ended, record['seconds'], self.oracle, pruned_at=pruned_at))

  def progress_line(self, trial, seconds: float, pruned_at: Optional[int] = None) -> str:
    return self.progress.line(trial, seconds, self.oracle, pruned_at=pruned_at)


def write_json(path: str, value) -> None:
  """Writes `path` whole or not at all."""
  whole_file.write(path, json.dumps(value))
