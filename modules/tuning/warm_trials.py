"""--warm-start: an earlier search's completed trials teach a new search's oracle.

keras-tuner cannot import trials; its oracles learn only from `self.trials`.
The runner reads the earlier search and keeps the trials that fit the new
space (tfx_pipeline/warm_search.py, modules/tuning/space_fit.py); they reach
`tuner_fn` in custom_config (CUSTOM_CONFIG_KEY: the source folder, and each
trial's id, values and score), in every process, Vertex AI's jobs included.

`feed` turns them into completed keras-tuner `Trial`s held by the oracle
(`WarmStart`, mixed into its class as modules/tuning/pruning.py mixes in its
own), marked warm, and teaches them:
- TPE (modules/tuning/optuna_oracle.py): each goes into Optuna's study with
  `study.add_trial`, as the study is rebuilt on a reload;
- keras-tuner's Bayesian oracle fits its Gaussian process on the COMPLETED
  trials in `self.trials`: the warm ones are there while it proposes
  (`populate_space`), and so also count toward its random start.
Everywhere else they stay out of `self.trials`, so --max-trials, trial ids,
progress lines, the budget, pruning's median and checkpoints see this search's
own trials only, and the warm ones are never re-run. Their values count as
tried, so neither oracle proposes them again.

Each is saved as `warm_<id>/trial.json` in the search's project folder (not
`trial_*`, which keras-tuner reloads as its own): a resumed search finds them
there and neither adds them twice nor loses them, and the report shows them
(status WARM).
"""

from __future__ import annotations

import glob
import os
from typing import Dict, List, Optional

import keras_tuner

from modules.runtime import console
from modules.tuning import state

# custom_config key of the trials the runner read: {'source': folder, 'trials': [...]}.
CUSTOM_CONFIG_KEY = state.WARM_TRIALS_KEY
# A warm trial's folder in the project, and its trial id's start.
PREFIX = 'warm_'
# The metric that marks a trial warm (it survives trial.json and keras-tuner's gRPC).
METRIC = 'warm'
_COMPLETED = keras_tuner.engine.trial.TrialStatus.COMPLETED


def is_warm(trial) -> bool:
  return trial.metrics.exists(METRIC)


class WarmStart:
  """Mixed into a keras-tuner oracle's class by `feed`: holds and teaches the warm trials."""

  warm_trials: Dict[str, keras_tuner.engine.trial.Trial]

  def populate_space(self, trial_id):
    # Called by create_trial under the oracle's lock. keras-tuner's Bayesian
    # oracle reads the completed trials from self.trials alone.
    shown = {i: t for i, t in self.warm_trials.items() if i not in self.trials}
    self.trials.update(shown)
    try:
      return super().populate_space(trial_id)
    finally:
      for trial_id_ in shown:
        self.trials.pop(trial_id_, None)

  def get_best_trials(self, num_trials=1):
    # The best is this search's own: a warm trial was scored in another search,
    # on other data or folds, so its score does not compare with this search's,
    # and the Trainer must retrain what this search measured.
    own = super().get_best_trials(len(self.trials) + len(self.warm_trials))
    return [t for t in own if not is_warm(t)][:num_trials]

  @keras_tuner.synchronized
  def reload(self):
    super().reload()
    self._learn()  # TPE's study is rebuilt from this search's trials alone.

  def _learn(self) -> None:
    for trial in self.warm_trials.values():
      self._tried_so_far.add(self._compute_values_hash(trial.hyperparameters.values))
      if hasattr(self, 'study'):  # OptunaOracle: the code that rebuilds its study.
        self._add(trial)


_CLASSES: Dict[type, type] = {}


def _enable(oracle) -> None:
  base = type(oracle)
  if not isinstance(oracle, WarmStart):
    if base not in _CLASSES:
      _CLASSES[base] = type(base.__name__, (WarmStart, base), {})
    oracle.__class__ = _CLASSES[base]
    oracle.warm_trials = {}


def make_trial(space, trial_id: str, values: dict, score: float, source: str):
  """A completed keras-tuner trial with `values` and `score`, marked warm."""
  hps = space.copy()
  hps.values = dict(values)
  trial = keras_tuner.engine.trial.Trial(hps, trial_id=PREFIX + trial_id, status=_COMPLETED)
  trial.score = score
  trial.metrics.register(METRIC, direction='max')
  trial.metrics.update(METRIC, 1.0)
  trial.message = f'warm start from {source}'
  return trial


def held(project_dir: str) -> List[keras_tuner.engine.trial.Trial]:
  """The warm trials a search saved (an earlier run of it), in id order."""
  paths = sorted(glob.glob(os.path.join(project_dir, PREFIX + '*', 'trial.json')))
  return [keras_tuner.engine.trial.Trial.load(path) for path in paths]


@keras_tuner.synchronized
def feed(oracle, warm: Optional[dict], echo=console.line) -> int:
  """Gives `oracle` (a local one) the warm trials; returns how many it holds.

  A search that saved warm trials (a resumed one) keeps those and adds none of
  `warm` (the runner's, from custom_config): a trial is never added twice.
  """
  _enable(oracle)
  project = oracle._project_dir
  trials = held(project)
  if trials and warm:
    echo(f'tuning: warm start: the resumed search keeps its {len(trials)} warm trials')
  elif warm:
    source = warm['source']
    for entry in warm['trials']:
      trial = make_trial(
        oracle.hyperparameters, entry['trial_id'], entry['values'], entry['score'], source
      )
      os.makedirs(os.path.join(project, trial.trial_id), exist_ok=True)
      trial.save(os.path.join(project, trial.trial_id, 'trial.json'))
      trials.append(trial)
  oracle.warm_trials = {t.trial_id: t for t in trials}
  oracle._learn()
  return len(trials)
