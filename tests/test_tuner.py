"""tuner_fn picks keras-tuner's own tuner per option; the Hyperband cost preview is exact."""

import keras
import keras_tuner
import numpy as np
import pytest

from modules import tuner as tuner_module
from modules.module_config import ModuleConfig
from modules.training.augmentation import Augmentation
from tests.conftest import toy_hypermodel

EXPECTED = {
  'hyperband': (keras_tuner.Hyperband, keras_tuner.oracles.HyperbandOracle),
  'bayesian': (keras_tuner.BayesianOptimization, keras_tuner.oracles.BayesianOptimizationOracle),
  'random': (keras_tuner.RandomSearch, keras_tuner.oracles.RandomSearchOracle),
}


@pytest.mark.parametrize('name', sorted(EXPECTED))
def test_tuner_fn_returns_the_chosen_keras_tuner(name, fn_args_for):
  result = tuner_module.tuner_fn(fn_args_for({'tuner': name, 'max_trials': 3}))
  tuner_cls, oracle_cls = EXPECTED[name]
  assert isinstance(result.tuner, tuner_cls)
  assert isinstance(result.tuner.oracle, oracle_cls)
  assert result.tuner.oracle.objective.name == 'val_accuracy'
  assert result.tuner.oracle.objective.direction == 'max'
  # A bound on every oracle: TFX's executor sorts by oracle.max_trials.
  expected_trials = tuner_module.hyperband_schedule(2, 2)[0] if name == 'hyperband' else 3
  assert result.tuner.oracle.max_trials == expected_trials

  kwargs = result.fit_kwargs
  assert kwargs['epochs'] == 2
  (stopper,) = [c for c in kwargs['callbacks'] if isinstance(c, keras.callbacks.EarlyStopping)]
  assert stopper.monitor == 'val_accuracy'
  # The hypermodel's fit reads the data, in each trial's batch size: here the
  # default backbone's cached features (frozen efficientnet-lite0, 1280 per image).
  data = result.tuner.hypermodel.data
  assert data.cached_features
  features, label = next(iter(data.train(4, Augmentation())))
  assert features.shape == (4, 1280) and label.dtype.is_integer
  assert next(iter(data.eval(4)))[0].shape == (4, 1280)


def test_search_runs_finds_the_best_and_leaves_no_traced_graph_behind(fn_args_for):
  from modules.runtime import gradient_registry

  result = tuner_module.tuner_fn(fn_args_for({'tuner': 'random', 'max_trials': 2, 'max_epochs': 1}))
  graphs, gradients = _train_step_graphs(), gradient_registry.names()
  result.tuner.search(**result.fit_kwargs)
  trials = result.tuner.oracle.trials.values()
  assert len(trials) == 2 and all(t.status == 'COMPLETED' for t in trials)
  best = result.tuner.get_best_hyperparameters()[0]
  assert best.values == max(trials, key=lambda t: t.score).hyperparameters.values
  # Each trial traced a train step, whose all-reduce registered custom gradients; they go
  # with the trial (modules/runtime/gradient_registry.py), so a long search stays flat.
  keras.backend.clear_session()  # What keras-tuner does before each build.
  assert gradient_registry.names() <= gradients
  assert _train_step_graphs() <= graphs


def _train_step_graphs() -> int:
  """Traced train steps still in memory."""
  import gc

  from tensorflow.python.framework import func_graph

  gc.collect()
  return sum(
    isinstance(o, func_graph.FuncGraph) and o.name == 'one_step_on_data' for o in gc.get_objects()
  )


def _oracle_schedule(max_epochs, factor, directory):
  """(trials, epochs) keras-tuner's HyperbandOracle hands out, trial by trial, with random scores.

  What a Hyperband tuner trains is what its oracle asks for: each trial fits
  from `tuner/initial_epoch` to `tuner/epochs`.
  """
  hp = keras_tuner.HyperParameters()
  hp.Int('units', 1, 64)
  oracle = keras_tuner.oracles.HyperbandOracle(
    objective=keras_tuner.Objective('val_accuracy', 'max'),
    max_epochs=max_epochs,
    factor=factor,
    seed=1,
    hyperparameters=hp,
  )
  oracle._set_project_dir(str(directory), 'schedule')  # pylint: disable=protected-access
  rng = np.random.default_rng(0)
  trials = epochs = 0
  while True:
    trial = oracle.create_trial('tuner0')
    if trial.status == 'STOPPED':
      return trials, epochs
    values = trial.hyperparameters.values
    trials += 1
    epochs += values['tuner/epochs'] - values.get('tuner/initial_epoch', 0)
    oracle.update_trial(trial.trial_id, {'val_accuracy': float(rng.random())})
    trial.status = 'COMPLETED'
    oracle.end_trial(trial)


def test_hyperband_schedule_matches_what_keras_tuner_runs(tmp_path):
  """A real Hyperband search on a toy model: the trials and epochs it runs, counted."""
  epochs_run = []

  class CountEpochs(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
      epochs_run.append(epoch)

  x = np.random.default_rng(0).normal(size=(16, 2)).astype('float32')
  y = (x[:, 0] > 0).astype('float32')
  search = keras_tuner.Hyperband(
    toy_hypermodel,
    objective='val_accuracy',
    max_epochs=3,
    factor=2,
    seed=1,
    directory=str(tmp_path),
  )
  search.search(x, y, validation_data=(x, y), verbose=0, callbacks=[CountEpochs()])
  expected = tuner_module.hyperband_schedule(3, 2)
  assert (len(search.oracle.trials), len(epochs_run)) == expected
  assert _oracle_schedule(3, 2, tmp_path / 'oracle') == expected  # The oracle alone says the same.


@pytest.mark.parametrize('max_epochs,factor', [(2, 2), (4, 3), (9, 3), (27, 3)])
def test_hyperband_schedule_matches_what_the_oracle_hands_out(max_epochs, factor, tmp_path):
  assert _oracle_schedule(max_epochs, factor, tmp_path) == tuner_module.hyperband_schedule(
    max_epochs, factor
  )


def test_counts_for_the_other_tuners():
  config = ModuleConfig(tuner='random', max_trials=5, max_epochs=3)
  assert tuner_module.trial_count(config) == 5
  assert tuner_module.epoch_count(config) == 15
