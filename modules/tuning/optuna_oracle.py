"""`--tuner tpe`: a keras-tuner oracle that asks Optuna's TPE sampler for each trial's values.

`modules.tuner.make_tuner` builds `OptunaSearch` (a keras-tuner `Tuner`, as
`keras_tuner.RandomSearch` is) for `--tuner tpe`. Everything but the choice of
values stays keras-tuner's: trial files, resuming, the hooks, pruning
(modules/tuning/pruning.py mixes into this class as into keras-tuner's own),
and the parallel search, whose workers reach the chief's oracle over gRPC.

Optuna's study lives only in this process (in-memory storage) and is never
saved: keras-tuner's trial files are the record, and a reloaded oracle rebuilds
the study from its completed trials, so the sampler keeps learning after a
resume. The study runs ask-and-tell: `populate_space` asks, `end_trial` tells.
"""

from __future__ import annotations

import dataclasses
import decimal
from typing import Any, Callable, Dict, List, Optional, Tuple

import keras_tuner
import optuna
from keras_tuner.src.engine import hyperparameters as hp_module
from optuna.distributions import (
  BaseDistribution,
  CategoricalDistribution,
  FloatDistribution,
  IntDistribution,
)
from optuna.trial import TrialState

from modules.tuning import multi_objective, pareto

_RUNNING = keras_tuner.engine.trial.TrialStatus.RUNNING
_STOPPED = keras_tuner.engine.trial.TrialStatus.STOPPED
_COMPLETED = keras_tuner.engine.trial.TrialStatus.COMPLETED
# TPE proposals per new trial before the oracle stops trusting it to find an untried point.
PROPOSALS = 10


def _same(value):
  return value


@dataclasses.dataclass(frozen=True)
class Dimension:
  """One searched hyperparameter as Optuna sees it: a distribution, and its values both ways."""

  distribution: BaseDistribution
  to_value: Callable[[Any], Any] = _same  # Optuna's param -> keras-tuner's value.
  to_param: Callable[[Any], Any] = _same  # keras-tuner's value -> Optuna's param.


def dimension(hp) -> Optional[Dimension]:
  """The Optuna dimension of keras-tuner hyperparameter `hp`; None for a Fixed (not searched)."""
  if isinstance(hp, hp_module.Fixed):
    return None
  if isinstance(hp, (hp_module.Choice, hp_module.Boolean)):
    return Dimension(CategoricalDistribution(list(hp.values)))
  integer = isinstance(hp, hp_module.Int)
  low, high, step, sampling = hp.min_value, hp.max_value, hp.step, hp.sampling
  if step is not None and sampling != 'linear':
    return _grid(hp, integer)
  if sampling == 'reverse_log':
    return _mirrored(low, high, integer)
  if integer:
    if sampling == 'log':
      return Dimension(IntDistribution(low, high, log=True))
    return Dimension(IntDistribution(low, _last_step(low, high, step), step=step))
  if step is not None:
    return Dimension(FloatDistribution(low, _last_step(low, high, step), step=step))
  return Dimension(FloatDistribution(low, high, log=sampling == 'log'))


def _last_step(low, high, step):
  """The last `low + k * step` within `high`, in decimal so that Optuna finds it on its grid."""
  low_, high_, step_ = (decimal.Decimal(str(v)) for v in (low, high, step))
  last = low_ + ((high_ - low_) // step_) * step_
  return int(last) if isinstance(low, int) else float(last)


def _grid(hp, integer: bool) -> Dimension:
  """A log range with a step multiplies by it: Optuna has no such grid, so it searches the index.

  The index is uniform in log space, which is what keras-tuner's own draw is.
  """
  cast = int if integer else float
  values = [cast(hp._get_value_by_index(i)) for i in range(hp._get_n_values())]
  return Dimension(
    IntDistribution(0, len(values) - 1),
    to_value=lambda index: values[index],
    to_param=lambda value: min(range(len(values)), key=lambda i: abs(values[i] - value)),
  )


def _mirrored(low, high, integer: bool) -> Dimension:
  """reverse_log: dense near `high`, as log is near `low`; Optuna searches the mirror image."""

  def mirror(x):
    return min(max(high + low - x, low), high)

  distribution = (IntDistribution if integer else FloatDistribution)(low, high, log=True)
  return Dimension(distribution, to_value=mirror, to_param=mirror)


def suggest(trial: optuna.Trial, name: str, dim: Dimension):
  """`trial`'s param `name` from `dim`'s distribution, through Optuna's public suggest calls."""
  d = dim.distribution
  if isinstance(d, CategoricalDistribution):
    return trial.suggest_categorical(name, d.choices)
  suggest_range = trial.suggest_int if isinstance(d, IntDistribution) else trial.suggest_float
  return suggest_range(name, d.low, d.high, step=d.step, log=d.log)


def optuna_names(space: List) -> List[str]:
  """Optuna's name for each hyperparameter of `space`.

  keras-tuner lets two conditional scopes declare one name with different
  ranges; Optuna wants one distribution per name, so those carry their conditions.
  """
  names = [hp.name for hp in space]
  return [
    hp.name
    if names.count(hp.name) == 1
    else hp.name + ''.join(f'|{c.name}={list(c.values)}' for c in hp.conditions)
    for hp in space
  ]


def startup_trials(max_trials: Optional[int]) -> int:
  """Random trials before TPE models the results.

  Optuna's default, 10, would leave a default 8-trial search all random; a
  third of the trials, at least 2, leaves most of a small search to TPE.
  """
  return 10 if not max_trials else min(10, max(2, max_trials // 3))


class OptunaOracle(multi_objective.ParetoChoice, keras_tuner.Oracle):
  """keras-tuner's Oracle with Optuna's TPE choosing values (objectives: multi_objective.py)."""

  def __init__(
    self,
    objective=None,
    max_trials=10,
    seed=None,
    hyperparameters=None,
    allow_new_entries=True,
    tune_new_entries=True,
    max_retries_per_trial=0,
    max_consecutive_failed_trials=3,
    n_startup_trials: Optional[int] = None,
    objectives=(pareto.ACCURACY,),
    limits=None,
  ):
    self.objectives, self.limits = tuple(objectives), dict(limits or {})
    super().__init__(
      objective=objective,
      max_trials=max_trials,
      hyperparameters=hyperparameters,
      allow_new_entries=allow_new_entries,
      tune_new_entries=tune_new_entries,
      seed=seed,
      max_retries_per_trial=max_retries_per_trial,
      max_consecutive_failed_trials=max_consecutive_failed_trials,
    )
    self.n_startup_trials = (
      startup_trials(max_trials) if n_startup_trials is None else n_startup_trials
    )
    # keras-tuner prints its own lines for each trial; Optuna's INFO line per
    # told trial would repeat them in the Tuner's log.
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    self.study = self._new_study(self.seed)
    self._asked: Dict[str, optuna.Trial] = {}  # keras-tuner trial id -> its running Optuna trial.

  def _new_study(self, seed: int) -> optuna.Study:
    # Optuna 5.1's TPE takes several objectives (its MOTPE); NSGA-II's first
    # generation (50 trials by default) would be all random in a search this size.
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=self.n_startup_trials)
    directions = [f'{pareto.DIRECTIONS[name]}imize' for name in self.objectives]
    return optuna.create_study(
      storage=optuna.storages.InMemoryStorage(), sampler=sampler, directions=directions
    )

  def _named_space(self) -> List[Tuple[Any, str]]:
    """(hyperparameter, Optuna name) for each of the space's, in its order."""
    space = self.hyperparameters.space
    return list(zip(space, optuna_names(space)))

  def populate_space(self, trial_id):
    # Called by create_trial, under the oracle's lock.
    for _ in range(PROPOSALS):
      asked, values = self._ask()
      if not self._duplicate(values):
        self._asked[trial_id] = asked
        return {'status': _RUNNING, 'values': values}
      # Failed trials are left out of TPE's model: the draw is forgotten, not scored.
      self.study.tell(asked, state=TrialState.FAIL)
    # TPE keeps proposing points it has tried once it has settled on them: a
    # random draw, bounded as keras-tuner's oracles bound theirs, finds what is
    # left, and ends the search as they do when nothing is.
    values = self._random_values()
    if values is None:
      return {'status': _STOPPED, 'values': None}
    return {'status': _RUNNING, 'values': values}

  def _ask(self) -> Tuple[optuna.Trial, Dict[str, Any]]:
    """An Optuna trial and its values, asked only where their conditions hold (as RandomSearch)."""
    asked = self.study.ask()
    hps = keras_tuner.HyperParameters()
    for hp, name in self._named_space():
      hps.merge([hp])
      if hps.is_active(hp):
        dim = dimension(hp)
        hps.values[hp.name] = hp.value if dim is None else dim.to_value(suggest(asked, name, dim))
    return asked, hps.values

  @keras_tuner.synchronized
  def end_trial(self, trial):
    super().end_trial(trial)
    ended = self.trials[trial.trial_id]
    asked = self._asked.pop(ended.trial_id, None)
    values = self.objective_values(ended) if ended.status == _COMPLETED else None
    if values is not None:
      if asked is not None:
        self.study.tell(asked, values)
      else:  # Values from the random draw, or a trial rerun after a resume.
        self._add(ended)
    elif asked is not None:
      # INVALID (a retry may still complete it: then it is added), FAILED, or unmeasured.
      self.study.tell(asked, state=TrialState.FAIL)

  @keras_tuner.synchronized
  def reload(self):
    super().reload()
    # A sampler seeded as the first run's would draw its random trials again, all tried.
    self.study = self._new_study(self.seed + len(self.trials))
    self._asked = {}
    for trial_id in self.end_order:
      trial = self.trials.get(trial_id)
      if trial is not None and trial.status == _COMPLETED:
        self._add(trial)

  def _add(self, trial) -> None:
    """Tells the study about a completed keras-tuner trial it did not ask for."""
    frozen = self.frozen_trial(trial)
    if frozen is not None:
      self.study.add_trial(frozen)

  def frozen_trial(self, trial) -> Optional[optuna.trial.FrozenTrial]:
    """A completed keras-tuner trial as an Optuna one (None: outside the space as it is now)."""
    values, scores = trial.hyperparameters.values, self.objective_values(trial)
    hps = keras_tuner.HyperParameters()
    hps.values = dict(values)
    params, distributions = {}, {}
    for hp, name in self._named_space():
      dim = dimension(hp)
      if dim is not None and hp.name in values and hps.is_active(hp):
        params[name] = dim.to_param(values[hp.name])
        distributions[name] = dim.distribution
    try:
      return optuna.trial.create_trial(params=params, distributions=distributions, values=scores)
    except ValueError:  # A value the space no longer holds (or no figures): nothing to learn.
      return None


class OptunaSearch(keras_tuner.Tuner):
  """keras-tuner's Tuner over an `OptunaOracle`, as `keras_tuner.RandomSearch` is over its own."""

  def __init__(
    self,
    hypermodel=None,
    objective=None,
    max_trials=10,
    seed=None,
    hyperparameters=None,
    tune_new_entries=True,
    allow_new_entries=True,
    max_retries_per_trial=0,
    max_consecutive_failed_trials=3,
    objectives=(pareto.ACCURACY,),
    limits=None,
    **kwargs,
  ):
    self.seed = seed
    oracle = OptunaOracle(
      objective=objective,
      max_trials=max_trials,
      seed=seed,
      hyperparameters=hyperparameters,
      tune_new_entries=tune_new_entries,
      allow_new_entries=allow_new_entries,
      max_retries_per_trial=max_retries_per_trial,
      max_consecutive_failed_trials=max_consecutive_failed_trials,
      objectives=objectives,
      limits=limits,
    )
    super().__init__(oracle, hypermodel, **kwargs)
