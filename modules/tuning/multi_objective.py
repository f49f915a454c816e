"""--objectives latency_ms / model_mb: each trial's figures, and the trial chosen from the front.

keras-tuner's Oracle ranks trials by one objective: val_accuracy stays its
objective (the trial's `score`), and the other figures are trial metrics, so
they are saved in trial.json, cross a parallel search's gRPC as any metric
does, and reach the report and TensorBoard. `MeasuredTrials` (mixed into the
tuner) adds them to a trial's results after its fit; `ParetoChoice` (a base of
modules/tuning/optuna_oracle.py's oracle) reads them back, for Optuna's study
(all objectives at end_trial) and for the choice: `get_best_trials` puts the
chosen trial first, so TFX's Tuner writes it as best_hyperparameters, and
`OptunaSearch.get_best_hyperparameters` fails in one line when no trial is within the limits.
"""

from __future__ import annotations

import json
import os
from typing import Dict, List, Optional, Sequence

import keras
import keras_tuner

from modules.model import latency_probe
from modules.tuning import pareto, warm_trials

_COMPLETED = keras_tuner.engine.trial.TrialStatus.COMPLETED
# The figures every trial of a multi-objective search records, whichever it searches on.
FIGURES = (pareto.LATENCY, pareto.SIZE)
# In the keras-tuner project folder: the objectives and the limits of the run
# that wrote best_hyperparameters last, for the report (tfx_pipeline/local/front.py).
CHOICE_FILE = 'pareto.json'


class ParetoChoice:
  """An oracle's reading of its trials' objectives, and the trial the limits choose."""

  objectives: Sequence[str] = (pareto.ACCURACY,)
  limits: Dict[str, Optional[float]] = {}

  def objective_values(self, trial) -> Optional[List[float]]:
    """The trial's figure for each objective, in order; None where one is missing."""
    values = []
    for name in self.objectives:
      if name == pareto.ACCURACY:
        value = trial.score
      else:
        value = trial.metrics.get_last_value(name) if trial.metrics.exists(name) else None
      if value is None:
        return None
      values.append(float(value))
    return values

  def points(self) -> List[pareto.Point]:
    """This search's completed trials with every figure (warm trials are another search's)."""
    points = []
    for trial in self.trials.values():
      values = self.objective_values(trial) if trial.status == _COMPLETED else None
      if values is not None and not warm_trials.is_warm(trial):
        points.append(pareto.Point(trial.trial_id, dict(zip(self.objectives, values))))
    return points

  def choice(self) -> pareto.Choice:
    """The chosen trial (pareto.choose); NoTrialFits where none is within the limits."""
    return pareto.choose(self.points(), self.objectives, self.limits)

  def get_best_trials(self, num_trials=1):
    ranked = super().get_best_trials(len(self.trials))
    if len(self.objectives) > 1:
      try:
        chosen = self.trials[self.choice().point.trial]
      except pareto.NoTrialFits:  # Mid-search: the progress line's best is the most accurate.
        chosen = None
      if chosen is not None:
        ranked = [chosen] + [t for t in ranked if t is not chosen]
    return ranked[:num_trials]

  def write_choice_file(self) -> None:
    """The objectives and limits of this run, beside the trials, for the report."""
    path = os.path.join(self._project_dir, CHOICE_FILE)
    with open(path, 'w') as f:
      json.dump({'objectives': list(self.objectives), 'limits': self.limits}, f)


def read_choice_file(project: str) -> Optional[dict]:
  """What `write_choice_file` wrote in the keras-tuner project folder; None for one objective."""
  try:
    with open(os.path.join(project, CHOICE_FILE)) as f:
      return json.load(f)
  except (OSError, ValueError):
    return None


class MeasuredTrials:
  """A keras-tuner Tuner mixin: a trial's results gain its served model's latency and size.

  On a FlowerHyperModel (its `config` and `num_classes` describe the served
  model); the one-thread process that measures is modules/model/latency_probe.py's.
  """

  def _build_and_fit_model(self, trial, *args, **kwargs):
    results = super()._build_and_fit_model(trial, *args, **kwargs)
    figures = latency_probe.shared().measure(
      trial.hyperparameters.get_config(),
      self.hypermodel.config.to_custom_config(),
      self.hypermodel.num_classes,
    )
    return with_figures(results, {name: figures[name] for name in FIGURES})

  def on_search_end(self):
    super().on_search_end()
    latency_probe.shared().close()  # Its TensorFlow would idle through the Trainer; it restarts.

  def get_best_hyperparameters(self, num_trials=1):
    # TFX's Tuner writes the first as best_hyperparameters: the chosen trial,
    # or, where no trial is within the limits, the run ends on that one line.
    self.oracle.choice()
    return super().get_best_hyperparameters(num_trials)


def with_figures(results, figures: Dict[str, float]):
  """`results` (a History or a metrics dict) with `figures` as metrics of every epoch.

  keras-tuner keeps the metrics of a History's best epoch: a figure in every
  epoch is there whichever epoch that is.
  """
  if isinstance(results, keras.callbacks.History):
    epochs = len(next(iter(results.history.values()), [])) or 1
    for name, value in figures.items():
      results.history[name] = [value] * epochs
    return results
  if isinstance(results, dict):
    return {**results, **figures}
  raise TypeError(f'cannot add {", ".join(figures)} to a trial result of type {type(results)}')
