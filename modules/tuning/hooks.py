"""keras-tuner hooks for the search: a line and a run record per trial, a live status, a budget.

`modules.tuner.make_tuner` mixes `SearchHooks` into the keras-tuner class it
picks, with its settings as constructor arguments. It uses keras-tuner's own
hooks (on_search_begin, pre_create_trial, on_trial_begin, on_batch_end,
on_epoch_end, on_trial_end), so the search loop stays keras-tuner's.

- Progress: as each trial ends, one line (`trial n/N: ... eta ...`) on the
  console (modules/runtime/console.py); each trial's duration and epochs go to
  `run.json` in its trial folder, which the tuning report reads. While a trial
  trains, a status (`trial n/N epoch e/E val_accuracy ... eta ...`) that a
  terminal shows on one updating line. `SearchProgress` does the counting, so
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
from typing import Callable, List, Optional

import numpy as np

from modules.runtime import console, stop, whole_file
from modules.search import search_space
from modules.search.search_space import OBJECTIVE
from modules.tuning import checkpoints, pruning

RUN_FILE = 'run.json'
# In a running trial's folder: its epochs so far and latest objective value, for a
# parallel search's chief, which cannot see its workers' epochs otherwise.
EPOCHS_FILE = 'epochs.json'
# How often, at most, a batch redraws the status (its elapsed time).
_STATUS_SECONDS = 1.0
# A trial in one of these has ended.
ENDED = ('COMPLETED', 'FAILED', 'INVALID')


def format_seconds(seconds: float) -> str:
  seconds = int(round(seconds))
  hours, rest = divmod(seconds, 3600)
  minutes, secs = divmod(rest, 60)
  if hours:
    return f'{hours}h{minutes:02d}m'
  return f'{minutes}m{secs:02d}s' if minutes else f'{secs}s'


def format_values(values: dict) -> str:
  """`units=192 optimizer=adam learning_rate=0.001`: the public hyperparameters, briefly."""
  return ' '.join(
    f'{k}={v:.3g}' if isinstance(v, float) else f'{k}={v}'
    for k, v in search_space.public_values(values).items()
  )


def _score(value) -> str:
  return 'none' if value is None else f'{value:.4f}'


def planned_epochs(trial, fit_epochs: int) -> int:
  """The epochs `trial` trains in its own fit: Hyperband's round, or `fit_epochs`."""
  values = trial.hyperparameters.values
  if 'tuner/epochs' in values:  # Hyperband: this round's epochs on top of the resumed ones.
    return values['tuner/epochs'] - values.get('tuner/initial_epoch', 0)
  return fit_epochs


def _last_epoch(trial, fit_epochs: int) -> int:
  """The epoch number `trial`'s fit ends at (Hyperband counts on from the resumed trial's)."""
  return trial.hyperparameters.values.get('tuner/epochs', fit_epochs)


class SearchProgress:
  """Counts a search's trials and epochs for the trial lines, the live status and the ETA.

  `total_epochs` is the search's planned epochs in all (None: no ETA). The ETA
  scales the time per epoch so far by the epochs the search still has planned
  (Hyperband's schedule, or `fit_epochs` per trial); early stopping makes it an
  overestimate that corrects itself as trials finish.
  """

  def __init__(self, total_epochs: Optional[int] = None, fit_epochs: int = 1):
    self.total_epochs = total_epochs
    self.fit_epochs = fit_epochs
    self.start()

  def start(self) -> None:
    self._start = time.monotonic()
    self._run_epochs = 0  # Planned epochs of the trials ended in this run.
    self._running = {}  # trial id -> (monotonic start, wall start)
    self._epochs = {}  # trial id -> epochs done in this run

  @property
  def elapsed(self) -> float:
    return time.monotonic() - self._start

  def trial_began(self, trial_id: str) -> None:
    self._running.setdefault(trial_id, (time.monotonic(), time.time()))
    self._epochs.setdefault(trial_id, 0)

  def epoch_ended(self, trial_id: str) -> None:
    self._epochs[trial_id] = self._epochs.get(trial_id, 0) + 1

  def epochs(self, trial_id: str) -> int:
    """Epochs `trial_id` has done in this run."""
    return self._epochs.get(trial_id, 0)

  def epochs_done(self, trial_id: str, epochs: int) -> None:
    """Sets the epochs `trial_id` has done in this run (the chief learns them from the oracle)."""
    self._epochs[trial_id] = epochs

  def trial_ended(self, trial) -> dict:
    """Forgets the running `trial`; returns its record: seconds, epochs, start, status."""
    started, wall_start = self._running.pop(trial.trial_id, (time.monotonic(), time.time()))
    self._run_epochs += planned_epochs(trial, self.fit_epochs)
    return {
      'seconds': time.monotonic() - started,
      'epochs': self._epochs.pop(trial.trial_id, 0),
      'started': wall_start,
      'status': trial.status,
    }

  def eta(self, trials: List) -> Optional[float]:
    """Seconds the search still needs, from every trial the oracle knows (None: unknown)."""
    running = sum(self._epochs.get(t.trial_id, 0) for t in trials if t.status not in ENDED)
    spent = self._run_epochs + running
    if not (self.total_epochs and spent and trials):
      return None
    planned_done = sum(planned_epochs(t, self.fit_epochs) for t in trials if t.status in ENDED)
    remaining = max(self.total_epochs - planned_done - running, 0)
    return self.elapsed / spent * remaining

  def line(
    self,
    trial,
    seconds: float,
    oracle,
    number: Optional[int] = None,
    pruned_at: Optional[int] = None,
  ) -> str:
    """`trial 3/10: units=... score=... best=... (41s) elapsed 2m05s eta 4m10s`.

    `number`: the trial's place among the ended ones (default: how many have
    ended). A worker of a parallel search sees only its own trials (its oracle
    is remote): it numbers the line by trial id and leaves out the ETA.
    `pruned_at`: the epoch a pruned trial stopped at (default: what the oracle
    recorded, which is how a parallel search's chief knows).
    """
    if pruned_at is None:
      pruned_at = pruning.pruned_trials(oracle).get(trial.trial_id)
    trials = list(oracle.trials.values()) if hasattr(oracle, 'trials') else []
    done = sum(t.status in ENDED for t in trials) if trials else int(trial.trial_id) + 1
    done = number or done
    best = oracle.get_best_trials(1)
    text = (
      f'trial {done}/{oracle.max_trials or "?"}: {format_values(trial.hyperparameters.values)} '
      f'score={_score(trial.score)} '
      f'best={_score(best[0].score if best else None)} ({format_seconds(seconds)}) '
      f'elapsed {format_seconds(self.elapsed)}'
    )
    if pruned_at is not None:
      text += f' [pruned at epoch {pruned_at}]'
    elif trial.status != 'COMPLETED':
      text += f' [{trial.status}]'
    eta = self.eta(trials)
    if eta is not None:
      text += f' eta {format_seconds(eta)}'
    return text

  def status(self, trial, oracle, value: Optional[float] = None, ahead: int = 0) -> str:
    """`trial 4/10 epoch 2/4 val_accuracy 0.812 (12s) elapsed 1m05s eta 2m10s`: a running trial.

    `ahead`: running trials that started before this one (a parallel search).
    """
    trials = list(oracle.trials.values())
    number = sum(t.status in ENDED for t in trials) + 1 + ahead
    last = _last_epoch(trial, self.fit_epochs)
    first = last - planned_epochs(trial, self.fit_epochs)
    epoch = min(first + self._epochs.get(trial.trial_id, 0) + 1, last)
    started = self._running.get(trial.trial_id, (time.monotonic(),))[0]
    text = (
      f'trial {number}/{oracle.max_trials or "?"} epoch {epoch}/{last} '
      f'{OBJECTIVE} {"-" if value is None else f"{value:.3f}"} '
      f'({format_seconds(time.monotonic() - started)}) elapsed {format_seconds(self.elapsed)}'
    )
    eta = self.eta(trials)
    return text + (f' eta {format_seconds(eta)}' if eta is not None else '')


class TuningBudget:
  """Minutes a search may start trials in, counted from `start()` (None: no limit)."""

  def __init__(self, minutes: Optional[float] = None):
    self.minutes = minutes
    self._start = time.monotonic()

  def start(self) -> None:
    self._start = time.monotonic()

  def stop_if_spent(self, oracle) -> Optional[str]:
    """Once spent, caps `oracle` at the trials started so far; returns the line saying so, once.

    `oracle` must be a local one (it has `trials`); the caller holds its lock
    where other threads use it.
    """
    if self.minutes is None or time.monotonic() - self._start < self.minutes * 60:
      return None
    # At least one trial, so there is a best to return.
    started = max(len(oracle.trials), 1)
    if oracle.max_trials is not None and started >= oracle.max_trials:
      return None
    line = (
      f'tuning budget of {self.minutes:g} min spent: no new trials after {started} '
      f'(of {oracle.max_trials or "?"}); keeping the best so far'
    )
    oracle.max_trials = started
    return line


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
