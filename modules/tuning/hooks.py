"""keras-tuner hooks for the search: a line and a run record per trial, and a time budget.

`modules.tuner.make_tuner` mixes `SearchHooks` into the keras-tuner class it
picks, with its settings as constructor arguments. It uses keras-tuner's own
hooks (on_search_begin, pre_create_trial, on_trial_begin, on_epoch_end,
on_trial_end), so the search loop stays keras-tuner's.

- Progress: as each trial ends, one line (`trial n/N: ... eta ...`); each
  trial's duration and epochs go to `run.json` in its trial folder, which the
  tuning report reads.
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
from typing import Callable, Optional

from modules import search_space
from modules.tuning import checkpoints

RUN_FILE = 'run.json'


def _print(line: str) -> None:
  print(line, flush=True)


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
  """Mixin for a keras-tuner Tuner: progress lines, run records and the time budget.

  `total_epochs` is the search's planned epochs in all (None: no ETA). The ETA
  scales the time per epoch so far by the epochs the search still has planned
  (Hyperband's schedule, or max_epochs per trial); early stopping makes it an
  overestimate that corrects itself as trials finish.
  """

  def __init__(
    self,
    *args,
    total_epochs: Optional[int] = None,
    budget_minutes: Optional[float] = None,
    echo: Callable[[str], None] = _print,
    **kwargs,
  ):
    self.total_epochs = total_epochs
    self.budget = TuningBudget(budget_minutes)
    self.checkpoint_bytes_freed = 0  # By this run's pruning.
    self.echo = echo
    super().__init__(*args, **kwargs)

  def search(self, *fit_args, **fit_kwargs):
    self._fit_epochs = fit_kwargs.get('epochs', 1)
    return super().search(*fit_args, **fit_kwargs)

  def on_search_begin(self):
    super().on_search_begin()
    self._search_start = time.monotonic()
    self.budget.start()
    self._epochs_this_run = 0
    self._trial_start = {}
    self._epochs = {}

  def pre_create_trial(self):
    super().pre_create_trial()
    # A worker of a parallel search has a remote oracle: its chief keeps the budget.
    if hasattr(self.oracle, 'trials'):
      line = self.budget.stop_if_spent(self.oracle)
      if line:
        self.echo(line)

  def on_trial_begin(self, trial):
    super().on_trial_begin(trial)
    self._trial_start[trial.trial_id] = (time.monotonic(), time.time())
    self._epochs[trial.trial_id] = 0

  def on_epoch_end(self, trial, model, epoch, logs=None):
    super().on_epoch_end(trial, model, epoch, logs)
    self._epochs[trial.trial_id] = self._epochs.get(trial.trial_id, 0) + 1

  def on_trial_end(self, trial):
    super().on_trial_end(trial)  # The oracle scores the trial here.
    if hasattr(self.oracle, 'trials'):
      # A worker of a parallel search has a remote oracle: its chief prunes.
      self.checkpoint_bytes_freed += checkpoints.prune(self.oracle, self._get_checkpoint_fname)
    ended = self.oracle.get_trial(trial.trial_id)
    started, wall_start = self._trial_start.pop(trial.trial_id, (time.monotonic(), time.time()))
    seconds = time.monotonic() - started
    self._epochs_this_run += self._planned_epochs(ended)
    record = {
      'seconds': seconds,
      'epochs': self._epochs.pop(trial.trial_id, 0),
      'started': wall_start,
      'status': ended.status,
    }
    with open(os.path.join(self.get_trial_dir(trial.trial_id), RUN_FILE), 'w') as f:
      json.dump(record, f)
    self.echo(self.progress_line(ended, seconds))

  def _planned_epochs(self, trial) -> int:
    values = trial.hyperparameters.values
    if 'tuner/epochs' in values:  # Hyperband: this round's epochs on top of the resumed ones.
      return values['tuner/epochs'] - values.get('tuner/initial_epoch', 0)
    return getattr(self, '_fit_epochs', 1)

  def progress_line(self, trial, seconds: float) -> str:
    # A worker of a parallel search sees only its own trials (its oracle is
    # remote): it numbers the line by trial id and leaves out the ETA.
    trials = list(self.oracle.trials.values()) if hasattr(self.oracle, 'trials') else []
    done = (
      sum(t.status in ('COMPLETED', 'FAILED', 'INVALID') for t in trials)
      if trials
      else int(trial.trial_id) + 1
    )
    total = self.oracle.max_trials or '?'
    best = self.oracle.get_best_trials(1)
    elapsed = time.monotonic() - self._search_start
    line = (
      f'trial {done}/{total}: {format_values(trial.hyperparameters.values)} '
      f'score={_score(trial.score)} '
      f'best={_score(best[0].score if best else None)} ({format_seconds(seconds)}) '
      f'elapsed {format_seconds(elapsed)}'
    )
    if trial.status != 'COMPLETED':
      line += f' [{trial.status}]'
    if self.total_epochs and self._epochs_this_run and trials:
      planned_done = sum(
        self._planned_epochs(t) for t in trials if t.status in ('COMPLETED', 'FAILED', 'INVALID')
      )
      remaining = max(self.total_epochs - planned_done, 0)
      line += f' eta {format_seconds(elapsed / self._epochs_this_run * remaining)}'
    return line
