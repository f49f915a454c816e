"""A time budget for the search: once spent, no new trial starts and the best so far stands.

`modules.tuner.make_tuner` mixes `TuningBudget` into the keras-tuner class it
picks. keras-tuner ends its search loop when the oracle answers a trial request
with STOPPED, which it does once `oracle.max_trials` trials exist; lowering
`max_trials` to the trials so far, in the `pre_create_trial` hook, ends the
search the supported way, and TFX's Tuner executor then writes the best trial.
The budget counts from the start of this run, so a rerun resumes the search
with a fresh budget.
"""
from __future__ import annotations

import time


class TuningBudget:
  """Mixin for a keras-tuner Tuner; `budget_seconds` is set by make_tuner (None: no budget)."""
  budget_seconds = None
  echo = staticmethod(lambda line: print(line, flush=True))

  def on_search_begin(self):
    super().on_search_begin()
    self._budget_start = time.monotonic()

  def pre_create_trial(self):
    super().pre_create_trial()
    if self.budget_seconds is None or not hasattr(self.oracle, 'trials'):
      return  # No budget, or a worker of a parallel search (its oracle is remote).
    if time.monotonic() - self._budget_start < self.budget_seconds:
      return
    # At least one trial, so there is a best to return.
    started = max(len(self.oracle.trials), 1)
    if self.oracle.max_trials is None or started < self.oracle.max_trials:
      self.echo(f'tuning budget of {self.budget_seconds / 60:g} min spent: no new trials '
                f'after {started} (of {self.oracle.max_trials or "?"}); keeping the best so far')
      self.oracle.max_trials = started
