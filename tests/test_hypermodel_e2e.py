"""A user's keras-tuner model builder (examples/flower_builder.py) through the whole pipeline.

On the real photos (the published shard: the run's one real-photo pipeline
run): tuned, trained, evaluated, pushed, and the pushed model classifies raw
JPEGs and TFRecord photos; a builder that breaks the contract stops the run in
one line; the builder's code keys the caches.
"""

import glob
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from tests import tiny
from tests.conftest import RESOLVER, WITHOUT_TFLITE
from tests.outputs import check_hyperparameters, check_outputs
from tfx_pipeline.local import cli, predict
from tfx_pipeline.local import runner as local_runner

pytestmark = pytest.mark.pipeline
BUILDER = 'examples.flower_builder:model_builder'
# The builder's own hyperparameters, as keras-tuner's tutorials declare them.
BUILDER_HYPERPARAMETERS = {'units', 'dense_activation', 'learning_rate'}


def _config(data_root, root, **module):
  return tiny.pipeline(data_root, root, tuner='random', max_epochs=1, epochs=1, **module)


def test_real_photos_through_a_user_builder(shared_flowers, tmp_path, capsys):
  """The published shard (its test split alone) is hash-split 80/10/10; predict names classes."""
  lines = []
  config = _config(shared_flowers, tmp_path / 'root', hypermodel=BUILDER)
  summary = local_runner.run(config, echo=lines.append)
  (data,) = [line for line in lines if line.startswith('data: ')]
  assert '80/10/10 into train/eval/test' in data and summary.evaluation.split == 'test'
  assert f'search space: the hyperparameters {BUILDER} declares' in lines
  # A user's builder makes the whole model, backbone included: no features step.
  run = [c for c in WITHOUT_TFLITE if c != 'BackboneFeatures']
  assert summary.states == {c: 'executed' for c in (*run, RESOLVER)}
  check_hyperparameters(summary, BUILDER_HYPERPARAMETERS)
  assert set(summary.best_hyperparameters) == BUILDER_HYPERPARAMETERS
  assert summary.best_hyperparameters['units'] in (64, 128, 192, 256)
  check_outputs(summary, tmp_path, shared_flowers)

  printed = []
  shard = glob.glob(os.path.join(shared_flowers, '*.tfrecord-*'))
  rows = predict.predict(summary.pushed_model, shard, limit=3, echo=printed.append)
  assert len(rows) == 3 and all(r['truth'] in tiny.CLASSES for r in rows)
  assert all(r['class_name'] in printed[i + 1] for i, r in enumerate(rows))

  model = tf.saved_model.load(summary.pushed_model)
  rows = list(predict.iter_photos(shard, limit=3))
  out = model.signatures['serving_jpeg'](images=tf.constant([encoded for _, encoded, _ in rows]))
  probabilities = out['probabilities'].numpy()
  assert probabilities.shape == (3, 5)
  np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
  assert {n.decode() for n in out['class_name'].numpy()} <= tiny.CLASSES

  # A builder that returns 3 classes for 5: the first build stops the run in one line.
  broken = tmp_path / 'three_classes.py'
  broken.write_text(
    'import keras\n\n\n'
    'def model_builder(hp, image_size=224):\n'
    '  model = keras.Sequential([keras.Input((image_size, image_size, 3)),\n'
    '    keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3, activation="softmax")])\n'
    "  model.compile('adam', 'sparse_categorical_crossentropy', metrics=['accuracy'])\n"
    '  return model\n'
  )
  capsys.readouterr()
  argv = ['--data-root', shared_flowers, '--pipeline-root', config.pipeline_root]
  argv += tiny.flags(tuner='random', max_trials=1, max_epochs=1)
  assert cli.main([*argv, '--hypermodel', f'{broken}:model_builder']) == 2
  captured = capsys.readouterr()
  error = next(line for line in captured.err.splitlines() if line.startswith('error:'))
  assert error == (
    f'error: --hypermodel {broken}:model_builder: the model outputs shape [N, 3] but the data '
    "has 5 classes: end it with Dense(5, activation='softmax')."
  )
  assert 'Traceback' not in captured.err
  assert '[7/10] Tuner ...' in captured.out and 'Tuner done' not in captured.out


def test_the_builder_module_keys_the_tuner_and_trainer_caches(tiny_data, tmp_path):
  from tfx_pipeline.pipeline import create_pipeline

  module = tmp_path / 'my_builder.py'
  helper = tmp_path / 'my_layers.py'
  helper.write_text('UNITS = 8\n')
  module.write_text('import my_layers\n\n\ndef model_builder(hp):\n  return my_layers.UNITS\n')

  def custom_configs():
    config = _config(tiny_data, tmp_path / 'root', hypermodel=f'{module}:model_builder')
    nodes = {c.id: c for c in create_pipeline(config).components}
    return [json.loads(nodes[n].exec_properties['custom_config']) for n in ('Tuner', 'Trainer')]

  first = custom_configs()
  assert first[0]['hypermodel_code'] == first[1]['hypermodel_code']
  helper.write_text('UNITS = 16\n')  # A file the builder imports counts too.
  second = custom_configs()
  assert second[0]['hypermodel_code'] != first[0]['hypermodel_code']
