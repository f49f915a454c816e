"""One progress line per finished trial, and a record of how long each trial ran.

`modules.tuner.make_tuner` mixes `TrialProgress` into the keras-tuner class it
picks; it uses keras-tuner's own hooks (on_trial_begin, on_epoch_end,
on_trial_end), so the search loop stays keras-tuner's. Each trial's duration and
epochs go to `run.json` in its trial folder, which the tuning report reads.
"""
from __future__ import annotations

import json
import os
import time

RUN_FILE = 'run.json'


def public_values(values: dict) -> dict:
  """Hyperparameter values without keras-tuner's bookkeeping (tuner/epochs, ...)."""
  return {k: v for k, v in values.items() if not k.startswith('tuner/')}


def format_seconds(seconds: float) -> str:
  seconds = int(round(seconds))
  hours, rest = divmod(seconds, 3600)
  minutes, secs = divmod(rest, 60)
  if hours:
    return f'{hours}h{minutes:02d}m'
  return f'{minutes}m{secs:02d}s' if minutes else f'{secs}s'


def format_values(values: dict) -> str:
  """`units=192 optimizer=adam learning_rate=0.001`: the public hyperparameters, briefly."""
  return ' '.join(f'{k}={v:.3g}' if isinstance(v, float) else f'{k}={v}'
                  for k, v in public_values(values).items())


def _score(value) -> str:
  return 'none' if value is None else f'{value:.4f}'


class TrialProgress:
  """Mixin for a keras-tuner Tuner: prints "trial n/N: ..." as each trial ends.

  The ETA scales the time per epoch so far by the epochs the search still has
  planned (Hyperband's schedule, or max_epochs per trial); early stopping makes
  it an overestimate that corrects itself as trials finish.
  """
  # Set by make_tuner: the search's planned epochs in all (None: no ETA).
  total_epochs = None
  echo = staticmethod(lambda line: print(line, flush=True))

  def search(self, *fit_args, **fit_kwargs):
    self._fit_epochs = fit_kwargs.get('epochs', 1)
    return super().search(*fit_args, **fit_kwargs)

  def on_search_begin(self):
    super().on_search_begin()
    self._search_start = time.monotonic()
    self._epochs_this_run = 0
    self._trial_start = {}
    self._epochs = {}

  def on_trial_begin(self, trial):
    super().on_trial_begin(trial)
    self._trial_start[trial.trial_id] = (time.monotonic(), time.time())
    self._epochs[trial.trial_id] = 0

  def on_epoch_end(self, trial, model, epoch, logs=None):
    super().on_epoch_end(trial, model, epoch, logs)
    self._epochs[trial.trial_id] = self._epochs.get(trial.trial_id, 0) + 1

  def on_trial_end(self, trial):
    super().on_trial_end(trial)  # The oracle scores the trial here.
    ended = self.oracle.get_trial(trial.trial_id)
    started, wall_start = self._trial_start.pop(trial.trial_id, (time.monotonic(), time.time()))
    seconds = time.monotonic() - started
    self._epochs_this_run += self._planned_epochs(ended)
    record = {'seconds': seconds, 'epochs': self._epochs.pop(trial.trial_id, 0),
              'started': wall_start, 'status': ended.status}
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
    done = (sum(t.status in ('COMPLETED', 'FAILED', 'INVALID') for t in trials)
            if trials else int(trial.trial_id) + 1)
    total = self.oracle.max_trials or '?'
    best = self.oracle.get_best_trials(1)
    elapsed = time.monotonic() - self._search_start
    line = (f'trial {done}/{total}: {format_values(trial.hyperparameters.values)} '
            f'score={_score(trial.score)} '
            f'best={_score(best[0].score if best else None)} ({format_seconds(seconds)}) '
            f'elapsed {format_seconds(elapsed)}')
    if trial.status != 'COMPLETED':
      line += f' [{trial.status}]'
    if self.total_epochs and self._epochs_this_run and trials:
      planned_done = sum(self._planned_epochs(t) for t in trials
                         if t.status in ('COMPLETED', 'FAILED', 'INVALID'))
      remaining = max(self.total_epochs - planned_done, 0)
      line += f' eta {format_seconds(elapsed / self._epochs_this_run * remaining)}'
    return line
