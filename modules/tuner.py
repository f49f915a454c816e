"""`tuner_fn` for the TFX Tuner: picks keras-tuner's Hyperband, Bayesian or random search, or TPE.

What to try lives in keras-tuner's oracles (TPE: Optuna's sampler behind one,
modules/tuning/optuna_oracle.py); this file only wires them to the
search space (modules/search/search_space.py), the hypermodel (modules/model/hypermodel.py:
the built-in model or the user's builder, fitted on the transformed data) and,
with --prune, median pruning (modules/tuning/pruning.py).
"""

import os
from typing import Optional

import keras
import keras_tuner
import tensorflow_transform as tft
from keras_tuner.src import utils as keras_tuner_utils
from tfx.components.trainer.fn_args_utils import FnArgs
from tfx.components.tuner.component import TunerFnResult

from modules import labels
from modules.model import hypermodel, model
from modules.module_config import WARM_START_TUNERS, ModuleConfig, RunPaths
from modules.runtime import gcs, strategy
from modules.search import search_space
from modules.search.search_space import OBJECTIVE
from modules.training import training_data
from modules.tuning import hooks, multi_objective, optuna_oracle, pareto, pruning, warm_trials
from modules.tuning import state as tuning_state


def _outside_a_notebook() -> bool:
  try:
    import IPython
  except ImportError:
    return True
  return IPython.get_ipython() is None


# keras-tuner takes any process that can import IPython for a notebook (it tests the class
# name of get_ipython(), which is None outside one), and before each "Trial N Complete"
# then writes IPython's clear_output: terminal control codes, into a log or a pipe.
if keras_tuner_utils.IS_NOTEBOOK and _outside_a_notebook():
  keras_tuner_utils.IS_NOTEBOOK = False


def hyperband_schedule(max_epochs: int, factor: int, iterations: int = 1):
  """(trials, epochs) that keras-tuner's Hyperband runs, from its own bracket sizes.

  Each bracket's later rounds resume the best earlier trials, so a round costs
  its size times the epochs added in that round.
  """
  oracle = keras_tuner.oracles.HyperbandOracle(
    objective=keras_tuner.Objective(OBJECTIVE, 'max'),
    max_epochs=max_epochs,
    factor=factor,
    hyperband_iterations=iterations,
  )
  trials = epochs = 0
  for bracket in range(oracle._get_num_brackets()):
    for rnd in range(oracle._get_num_rounds(bracket)):
      size = oracle._get_size(bracket, rnd)
      added = oracle._get_epochs(bracket, rnd) - (
        oracle._get_epochs(bracket, rnd - 1) if rnd else 0
      )
      trials += size
      epochs += size * added
  return trials * iterations, epochs * iterations


# The tuners that run --max-trials trials (Hyperband sizes its own search).
_TRIAL_TUNERS = {
  'bayesian': keras_tuner.BayesianOptimization,
  'random': keras_tuner.RandomSearch,
  'tpe': optuna_oracle.OptunaSearch,
}


def make_tuner(
  config: ModuleConfig,
  hypermodel,
  directory: str,
  project_name: str = 'search',
  distribution_strategy=None,
  space: Optional[search_space.Space] = None,
  warm: Optional[dict] = None,
) -> keras_tuner.Tuner:
  """The keras-tuner tuner for `config.tuner`, writing its trials under `directory`.

  `space` is what the oracle starts from (names the hypermodel declares itself
  are added as keras-tuner adds them); with `config.prune`, trials are pruned;
  `warm` (custom_config's warm trials) teaches a Bayesian or TPE oracle.
  """
  objective = keras_tuner.Objective(OBJECTIVE, direction='max')
  common = dict(
    objective=objective,
    seed=config.seed,
    directory=directory,
    project_name=project_name,
    overwrite=False,
    distribution_strategy=distribution_strategy,
    # The search hooks' settings: the ETA's epochs, the time budget, and
    # whether each epoch's metrics go to the oracle (which prunes on them).
    total_epochs=epoch_count(config),
    fit_epochs=config.max_epochs,
    budget_minutes=config.tuning_budget_minutes,
    report_epochs=bool(config.prune),
  )
  if space is not None:
    common['hyperparameters'] = space.hyperparameters()
  if config.tuner == 'hyperband':
    tuner = _watched(keras_tuner.Hyperband)(
      hypermodel, max_epochs=config.max_epochs, factor=config.factor, **common
    )
    # TFX's Tuner executor calls oracle.get_best_trials(oracle.max_trials), which
    # fails on Hyperband's None; the exact trial count changes nothing else.
    tuner.oracle.max_trials = hyperband_schedule(config.max_epochs, config.factor)[0]
  else:
    tuner = _trial_tuner(config, hypermodel, common)
  # A parallel search's worker has a remote oracle (no `trials`): the chief's prunes.
  if config.prune and hasattr(tuner.oracle, 'trials'):
    pruning.enable(tuner.oracle, warmup=config.prune_warmup, max_epochs=config.max_epochs)
  # Also without `warm`: a resumed search keeps the warm trials it saved.
  if config.tuner in WARM_START_TUNERS and hasattr(tuner.oracle, 'trials'):
    warm_trials.feed(tuner.oracle, warm)
  return tuner


def _trial_tuner(config: ModuleConfig, hypermodel, common: dict) -> keras_tuner.Tuner:
  """A tuner that runs --max-trials trials; with several --objectives, measuring each."""
  tuner_cls, objectives = _TRIAL_TUNERS[config.tuner], pareto.parse(config.objectives)
  if len(objectives) > 1:  # Only tpe passes the config's check.
    limits = {name: getattr(config, field) for name, field in pareto.LIMIT_FIELDS.items()}
    common = {**common, 'objectives': objectives, 'limits': limits}
    tuner_cls = type(tuner_cls.__name__, (multi_objective.MeasuredTrials, tuner_cls), {})
  tuner = _watched(tuner_cls)(hypermodel, max_trials=config.max_trials, **common)
  if len(objectives) > 1 and hasattr(tuner.oracle, 'trials'):
    tuner.oracle.write_choice_file()  # This run's limits, for the report.
  return tuner


def _watched(tuner_cls):
  """`tuner_cls` plus a progress line per trial and the time budget, through its own hooks."""
  return type(tuner_cls.__name__, (hooks.SearchHooks, tuner_cls), {})


def tuner_fn(fn_args: FnArgs) -> TunerFnResult:
  """The Tuner component's entry point."""
  config = ModuleConfig.from_custom_config(fn_args.custom_config)
  keras.utils.set_random_seed(config.seed)
  tf_transform_output = tft.TFTransformOutput(fn_args.transform_graph_path)
  num_classes = len(labels.class_names(tf_transform_output))
  space = search_space.from_custom_config(fn_args.custom_config)
  # The features of the space's default backbone at once; a searched one's when a trial asks.
  view = model.backbone_view(space.hyperparameters(), config)
  data = training_data.prepare(fn_args, config, tf_transform_output, view=view)
  tuner = make_tuner(
    config,
    hypermodel.FlowerHyperModel(config, data, num_classes),
    directory=search_directory(fn_args),
    distribution_strategy=strategy.choose(),
    space=space,
    warm=fn_args.custom_config.get(warm_trials.CUSTOM_CONFIG_KEY),
  )

  # The hypermodel's fit picks each trial's data (its batch size and augmentation).
  fit_kwargs = dict(
    # Hyperband sets each trial's epochs itself; the other tuners use this.
    epochs=config.max_epochs,
    verbose=2,  # One line per epoch: readable in logs, unlike progress bars.
    callbacks=[
      keras.callbacks.EarlyStopping(
        monitor=OBJECTIVE, mode='max', patience=config.early_stopping_patience
      )
    ],
  )
  return TunerFnResult(tuner=tuner, fit_kwargs=fit_kwargs)


def search_directory(fn_args: FnArgs) -> str:
  """Where keras-tuner keeps trials: the Tuner's working dir, or the shared folder on Vertex.

  In a parallel search, Hyperband resumes a trial from its checkpoint on
  whichever machine runs the next round, so every machine must see every
  checkpoint. CLOUD_ML_JOB_ID (Vertex's id of the tuning job, the same on all
  its machines) keeps each run's search apart.
  """
  shared = RunPaths.from_custom_config(fn_args.custom_config).shared_trials_dir
  if not shared:
    # A folder that outlives the run (see tuning_state), so a killed run resumes.
    return tuning_state.search_dir(fn_args) or fn_args.working_dir
  return os.path.join(gcs.local_path(shared), os.environ.get('CLOUD_ML_JOB_ID', 'search'))


def trial_count(config: ModuleConfig) -> int:
  """How many trials the configured search runs."""
  if config.tuner == 'hyperband':
    return hyperband_schedule(config.max_epochs, config.factor)[0]
  return config.max_trials


def epoch_count(config: ModuleConfig) -> int:
  """An upper bound on the search's training epochs (early stopping can cut it)."""
  if config.tuner == 'hyperband':
    return hyperband_schedule(config.max_epochs, config.factor)[1]
  return config.max_trials * config.max_epochs
