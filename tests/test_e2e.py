"""End to end: LocalDagRunner over tiny data with each tuner, the cache, and the real shard."""

import dataclasses
import glob
import os

import keras_tuner
import pytest

from modules.module_config import ModuleConfig
from tests.conftest import COMPONENTS, RESOLVER, UPSTREAM
from tfx_pipeline.config import PipelineConfig
from tfx_pipeline.local import predict, results
from tfx_pipeline.local import runner as local_runner

CLASSES = {'roses', 'sunflowers', 'daisy', 'dandelion', 'tulips'}
TINY = ModuleConfig(
  image_size=32, tuner='hyperband', max_trials=2, max_epochs=2, factor=2, epochs=2, batch_size=8
)


def _config(data_root, pipeline_root, **module_overrides):
  return PipelineConfig(
    data_root=data_root,
    pipeline_root=str(pipeline_root),
    module=dataclasses.replace(TINY, **module_overrides),
    accuracy_threshold=0.0,
  )


def _run(config):
  lines = []
  summary = local_runner.run(config, echo=lines.append)
  return summary, lines


def _photo(tmp_path, data_root):
  """One encoded photo from the data, written as a .jpg file."""
  ((name, encoded, truth),) = predict.iter_photos(
    glob.glob(os.path.join(data_root, '*.tfrecord-*'))[:1], 1
  )
  path = tmp_path / 'photo.jpg'
  path.write_bytes(encoded)
  return str(path), truth


def _check_outputs(summary, tmp_path, data_root, classes):
  hp_file = os.path.join(summary.best_hyperparameters_uri, 'best_hyperparameters.txt')
  hp = keras_tuner.HyperParameters.from_config(
    results.best_hyperparameters(os.path.dirname(hp_file))
  )
  assert {'units', 'dense_activation', 'learning_rate', 'optimizer'} <= set(hp.values)
  assert summary.best_hyperparameters == {
    k: v for k, v in hp.values.items() if not k.startswith('tuner/')
  }
  assert 0.0 <= summary.accuracy <= 1.0
  assert summary.pushed_model and os.path.isdir(summary.pushed_model)
  photo, _ = _photo(tmp_path, data_root)
  (row,) = predict.predict(summary.pushed_model, [photo], echo=lambda *_: None)
  assert row['class_name'] in classes and 0.0 < row['probability'] <= 1.0


@pytest.fixture(scope='module')
def first_run(tiny_data, tmp_path_factory):
  config = _config(tiny_data, tmp_path_factory.mktemp('e2e'))
  summary, lines = _run(config)
  return config, summary, lines


def test_first_run_executes_every_component_once(first_run, tiny_data, tmp_path):
  config, summary, lines = first_run
  assert summary.states == {c: 'executed' for c in (*COMPONENTS, RESOLVER)}
  for component in COMPONENTS:
    assert any(line.startswith('[') and f'] {component} done in' in line for line in lines)
  assert 'search: hyperband, 5 trials, at most 7 epochs in all' in lines
  # TFX's Trainer reads this artifact's only file; anything beside it fails a Trainer.
  assert os.listdir(summary.best_hyperparameters_uri) == ['best_hyperparameters.txt']
  _check_outputs(summary, tmp_path, tiny_data, CLASSES)
  assert predict.latest_pushed_model(config.serving_model_dir) == summary.pushed_model


def test_rerun_is_served_from_the_cache(first_run):
  config, _, _ = first_run
  summary, lines = _run(config)
  trained = (*UPSTREAM, 'Tuner', 'Trainer')
  assert {c: summary.states[c] for c in trained} == {c: 'cached' for c in trained}
  # The first run's model is the latest blessed one now: the Evaluator's new baseline
  # (itself), so the evaluation runs once more, and blesses it.
  assert {c: summary.states[c] for c in ('Evaluator', 'Pusher')} == {
    'Evaluator': 'executed',
    'Pusher': 'executed',
  }
  assert summary.evaluation.baseline_accuracy == summary.accuracy
  assert summary.pushed_model
  assert any('7 of 10 components from cache' in line for line in lines)


@pytest.mark.parametrize('tuner', ['bayesian', 'random'])
def test_other_tuners_reuse_upstream_and_search_again(first_run, tuner, tiny_data, tmp_path):
  config, _, _ = first_run
  summary, _ = _run(
    dataclasses.replace(
      config, module=dataclasses.replace(config.module, tuner=tuner, max_epochs=1)
    )
  )
  assert {c: summary.states[c] for c in UPSTREAM} == {c: 'cached' for c in UPSTREAM}
  downstream = set(COMPONENTS) - set(UPSTREAM)
  assert {c: summary.states[c] for c in downstream} == {c: 'executed' for c in downstream}
  _check_outputs(summary, tmp_path, tiny_data, CLASSES)


def test_real_flower_shard(shared_flowers, tmp_path):
  """The published shard (test split only) is hash-split and trains; predict names real classes."""
  config = _config(shared_flowers, tmp_path / 'root', tuner='random', max_trials=1, max_epochs=1)
  summary, lines = _run(config)
  (data,) = [line for line in lines if line.startswith('data: ')]
  assert 'splitting them 80/20' in data
  assert summary.states == {c: 'executed' for c in (*COMPONENTS, RESOLVER)}
  _check_outputs(summary, tmp_path, shared_flowers, CLASSES)
  printed = []
  rows = predict.predict(
    summary.pushed_model,
    glob.glob(os.path.join(shared_flowers, '*.tfrecord-*')),
    limit=3,
    echo=printed.append,
  )
  assert len(rows) == 3 and all(r['truth'] in CLASSES for r in rows)
  assert all(r['class_name'] in printed[i + 1] for i, r in enumerate(rows))
