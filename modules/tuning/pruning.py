"""Median pruning (`--prune median`): stop a trial at the end of an epoch that is clearly behind.

As Optuna's MedianPruner: at the end of epoch e, a trial whose best objective
so far is below the median of the completed trials' objective at epoch e is
stopped, once `warmup` trials have completed (pruned ones do not count). It
never stops a trial at its last epoch (nothing would be saved).

keras-tuner 1.4 reports nothing to the oracle between epochs, so the search
hooks (modules/tuning/hooks.py) send each epoch's metrics with
`oracle.update_trial(..., step=epoch)`; the oracle `enable` extends answers
with a trial whose status is STOPPED when the trial is to be pruned, and the
hooks then stop its training. In a parallel search the chief's oracle decides
(the workers' `update_trial` calls reach it over keras-tuner's gRPC protocol),
so every worker sees every completed trial.

A pruned trial ends COMPLETED, as keras-tuner ends any trial whose training
stopped early, and is scored like any other (its best epoch so far): the
oracle, Bayesian optimization's model included, learns from it. The oracle
keeps which trials it pruned (in its saved state, so a resumed search still
leaves them out of the median); the hooks record it in the trial's run.json for
the progress line and the report.
"""

from __future__ import annotations

import copy
import json
import os
import statistics
from typing import Dict, List, Optional

import keras_tuner

STOPPED = 'STOPPED'


def median_says_prune(
  best_so_far: Optional[float], completed_at_epoch: List[float], direction: str = 'max'
) -> bool:
  """True when `best_so_far` is worse than the median of the completed trials at this epoch."""
  if best_so_far is None or not completed_at_epoch:
    return False
  median = statistics.median(completed_at_epoch)
  return best_so_far < median if direction == 'max' else best_so_far > median


def _value_at(trial, metric: str, step: int) -> Optional[float]:
  if not trial.metrics.exists(metric):
    return None
  for observation in trial.metrics.get_history(metric):
    if observation.step == step:
      return observation.mean()
  return None


def _best_until(trial, metric: str, step: int, direction: str) -> Optional[float]:
  if not trial.metrics.exists(metric):
    return None
  values = [o.mean() for o in trial.metrics.get_history(metric) if o.step <= step]
  if not values:
    return None
  return max(values) if direction == 'max' else min(values)


class MedianPruning:
  """Mixed into a keras-tuner oracle's class by `enable`; its settings are set there too."""

  pruned: Dict[str, int]  # trial id -> epochs it trained before it was stopped.
  prune_warmup: int
  prune_max_epochs: int

  @keras_tuner.synchronized
  def update_trial(self, trial_id, metrics, step=0):
    trial = super().update_trial(trial_id, metrics, step=step)
    if self._should_prune(trial, step):
      self.pruned[trial_id] = step + 1
      self.save()
      # The caller (the hooks, or keras-tuner's servicer for a worker) sees
      # STOPPED; the oracle's own trial runs on until the tuner ends it.
      answer = copy.copy(trial)
      answer.status = STOPPED
      return answer
    return trial

  def _should_prune(self, trial, step: int) -> bool:
    if step >= self.prune_max_epochs - 1 or trial.trial_id in self.pruned:
      return False
    metric, direction = self.objective.name, self.objective.direction
    completed = [
      t
      for t in self.trials.values()
      if t.status == keras_tuner.engine.trial.TrialStatus.COMPLETED
      and t.trial_id not in self.pruned
      and t.trial_id != trial.trial_id
    ]
    if len(completed) < self.prune_warmup:
      return False
    at_epoch = [v for v in (_value_at(t, metric, step) for t in completed) if v is not None]
    return median_says_prune(_best_until(trial, metric, step, direction), at_epoch, direction)

  def get_state(self):
    return {**super().get_state(), 'pruned': dict(self.pruned)}

  def set_state(self, state):
    super().set_state(state)
    self.pruned = dict(state.get('pruned', {}))


_CLASSES: Dict[type, type] = {}


def enable(oracle, warmup: int, max_epochs: int):
  """Makes `oracle` (a keras-tuner oracle, maybe reloaded) prune by the median; returns it.

  Its class becomes a subclass of its own with `MedianPruning` mixed in, so
  isinstance checks and the saved state stay keras-tuner's.
  """
  base = type(oracle)
  if not isinstance(oracle, MedianPruning):
    if base not in _CLASSES:
      _CLASSES[base] = type(base.__name__, (MedianPruning, base), {})
    pruned = getattr(oracle, 'pruned', {})
    oracle.__class__ = _CLASSES[base]
    oracle.pruned = dict(pruned)
  oracle.prune_warmup = warmup
  oracle.prune_max_epochs = max_epochs
  # An oracle the tuner reloaded read its saved state before it could keep
  # `pruned`: read that part again, so a resumed search still knows them.
  if oracle.trials and not oracle.pruned:
    path = oracle._get_oracle_fname()
    if os.path.exists(path):
      with open(path) as f:
        oracle.pruned = dict(json.load(f).get('pruned', {}))
  return oracle


def pruned_trials(oracle) -> Dict[str, int]:
  """{trial id: epochs trained} of the trials `oracle` pruned (empty without pruning)."""
  return dict(getattr(oracle, 'pruned', {}))
