"""A search keeps only the trial checkpoints it may still read: Hyperband's parents, the best."""

import glob
import os

import numpy as np

from modules import tuner as tuner_module
from modules.module_config import ModuleConfig
from tests.conftest import toy_hypermodel


def _search(tmp_path, **options):
  tuner = tuner_module.make_tuner(ModuleConfig(seed=1, **options), toy_hypermodel, str(tmp_path))
  tuner.echo = lambda line: None
  kept_at_start = []  # Checkpoints on disk as each trial starts.
  begin = tuner.on_trial_begin

  def on_trial_begin(trial):
    kept_at_start.append(
      (trial.hyperparameters.values.get('tuner/trial_id'), set(_checkpoints(tuner)))
    )
    begin(trial)

  tuner.on_trial_begin = on_trial_begin
  x = np.random.default_rng(0).normal(size=(16, 2)).astype('float32')
  y = (x[:, 0] > 0).astype('float32')
  tuner.search(x, y, validation_data=(x, y), epochs=options.get('max_epochs', 1), verbose=0)
  return tuner, kept_at_start


def _checkpoints(tuner):
  return {
    os.path.basename(os.path.dirname(path))[len('trial_') :]
    for path in glob.glob(os.path.join(tuner.project_dir, 'trial_*', 'checkpoint.weights.h5'))
  }


def test_hyperband_promotes_from_kept_checkpoints_and_ends_with_the_best_alone(tmp_path):
  tuner, kept_at_start = _search(tmp_path, tuner='hyperband', max_epochs=3, factor=2)
  trials = tuner.oracle.trials.values()
  # Every promoted trial found its parent's weights (a missing file fails the trial).
  assert {t.status for t in trials} == {'COMPLETED'}
  promoted = [(parent, kept) for parent, kept in kept_at_start if parent is not None]
  assert promoted and all(parent in kept for parent, kept in promoted)
  # Along the way, finished brackets' checkpoints went: fewer kept than trials run.
  assert max(len(kept) for _, kept in kept_at_start) < len(trials) - 1
  assert _checkpoints(tuner) == {tuner.oracle.get_best_trials(1)[0].trial_id}
  # The best model still loads.
  assert tuner.get_best_models(1)[0] is not None


def test_random_search_keeps_only_the_best_checkpoint(tmp_path):
  tuner, kept_at_start = _search(tmp_path, tuner='random', max_trials=4, max_epochs=1)
  assert all(len(kept) <= 1 for _, kept in kept_at_start)
  assert _checkpoints(tuner) == {tuner.oracle.get_best_trials(1)[0].trial_id}
