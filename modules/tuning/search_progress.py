"""Counting a search for its lines: trials and epochs done, the ETA, the tuning budget.

`SearchHooks` (modules/tuning/hooks.py) keeps one `SearchProgress` and one
`TuningBudget` per search; a parallel search's chief, which sees its workers'
trials only through the oracle, keeps its own (tfx_pipeline/parallel/chief.py),
so both make the same lines. The tuning report formats durations the same way.
"""

from __future__ import annotations

import time
from typing import List, Optional

from modules.search import search_space
from modules.search.search_space import OBJECTIVE
from modules.tuning import pruning

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


def _figures(trial) -> str:
  """` latency_ms=2.9 model_mb=13.6`: what a multi-objective search measured (--objectives)."""
  metrics = getattr(trial, 'metrics', None)
  names = [n for n in ('latency_ms', 'model_mb') if metrics is not None and metrics.exists(n)]
  return ''.join(f' {n}={metrics.get_last_value(n):.3g}' for n in names)


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
      f'score={_score(trial.score)}{_figures(trial)} '
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
