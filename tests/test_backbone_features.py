"""The BackboneFeatures step: its records are the backbone features the Tuner and Trainer read."""

import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft

from modules.module_config import ModuleConfig, RunPaths
from modules.training import feature_records, training_data
from modules.training.augmentation import Augmentation
from modules.training.inputs import input_fn
from tests.test_model import _TinyFeatureExtractor
from tests.tiny import MODULE
from tfx_pipeline import backbone_features, features_input

ONE_WORKER = ['--direct_running_mode=in_memory', '--direct_num_workers=1']
# The step's second view: the tiny backbone at a searched image size below the stored one (the
# tiny data is stored at 32 px, the smallest size a space may declare; the step takes any).
SEARCHED_SIZE = 24


@pytest.fixture(scope='module')
def tiny_backbone(tmp_path_factory):
  path = str(tmp_path_factory.mktemp('backbone'))
  tf.saved_model.save(_TinyFeatureExtractor(), path)
  return path


@pytest.fixture(scope='module')
def step_output(transformed, tiny_backbone, tmp_path_factory):
  """The step's Executor, run as TFX runs it, over the transformed tiny data; its output folder."""
  from tfx.dsl.components.base import base_beam_executor
  from tfx.types import standard_artifacts

  _, files, _ = transformed
  root = tmp_path_factory.mktemp('step')
  examples = standard_artifacts.Examples()
  examples.uri = str(root / 'examples')
  examples.split_names = '["train", "eval"]'
  for split in ('train', 'eval'):
    os.makedirs(os.path.join(examples.uri, f'Split-{split}'))
    shutil.copy(files[split][0], os.path.join(examples.uri, f'Split-{split}', 'data.tfrecord'))
  out = standard_artifacts.Examples()
  out.uri = str(root / 'features')
  context = base_beam_executor.BaseBeamExecutor.Context(
    beam_pipeline_args=ONE_WORKER, tmp_dir=str(root / 'tmp')
  )
  backbone_features.Executor(context).Do(
    {'examples': [examples]},
    {'features': [out]},
    {
      backbone_features.VIEWS_KEY: json.dumps(
        [[tiny_backbone, MODULE.image_size], [tiny_backbone, SEARCHED_SIZE]]
      ),
      backbone_features.IMAGE_SIZE_KEY: MODULE.image_size,
      backbone_features.FINGERPRINT_KEY: 'test',
    },
  )
  return out.uri


def _rows(features, labels):
  """(label, features) rows in a fixed order: Beam keeps no order."""
  rows = np.concatenate([np.reshape(labels, [-1, 1]).astype(np.float32), features], axis=1)
  return rows[np.lexsort(rows.T[::-1])]


def _direct_features(transformed, backbone, split, size):
  """(label, features) rows of `split` with the backbone run here on images resized to `size`."""
  from tests.conftest import data_accessor

  transform_dir, files, _ = transformed
  images = input_fn(
    files[split],
    data_accessor(),
    tft.TFTransformOutput(transform_dir),
    8,
    image_size=MODULE.image_size,
    shuffle=False,
  )
  direct = [
    (backbone(tf.image.resize(x, [size, size])).numpy(), np.reshape(y.numpy(), [-1]))
    for x, y in images
  ]
  return _rows(np.concatenate([f for f, _ in direct]), np.concatenate([y for _, y in direct]))


def _batch_rows(batches):
  return _rows(np.concatenate([f for f, _ in batches]), np.concatenate([y for _, y in batches]))


def test_the_step_writes_each_images_backbone_features(step_output, transformed, tiny_backbone):
  summary = feature_records.read_summary(step_output)
  assert summary.views == ((tiny_backbone, MODULE.image_size), (tiny_backbone, SEARCHED_SIZE))
  assert summary.dims == (4, 4) and dict(summary.counts) == {'train': 30, 'eval': 10}
  backbone = tf.saved_model.load(tiny_backbone)
  for size in (MODULE.image_size, SEARCHED_SIZE):  # The stored images, resized for the view.
    for split in ('train', 'eval'):
      batches = feature_records.dataset(step_output, split, (tiny_backbone, size), 8, shuffle=False)
      written = _batch_rows(list(batches))
      expected = _direct_features(transformed, backbone, split, size)
      np.testing.assert_allclose(written, expected, rtol=1e-5, atol=1e-6)


def test_the_summary_keeps_the_splits_order_whatever_order_beam_counts_them(tmp_path):
  feature_records.write_summary(str(tmp_path), [('b', 32)], [4], {'eval': 10, 'train': 30})
  assert list(feature_records.read_summary(str(tmp_path)).counts) == ['train', 'eval']


@pytest.mark.parametrize('in_memory', [True, False])
def test_records_stream_or_stay_in_memory_with_the_same_batches(
  step_output,
  tiny_backbone,
  monkeypatch,
  in_memory,
):
  if not in_memory:
    monkeypatch.setattr(feature_records, 'IN_MEMORY_BYTES', 0)
  view = (tiny_backbone, MODULE.image_size)
  data = feature_records.dataset(step_output, 'train', view, 7, repeat=True, seed=1)
  labels = [y.numpy() for _, y in data.take(9)]  # 63 records: two passes and a bit.
  assert [len(y) for y in labels] == [7] * 9
  first_pass = np.concatenate(labels)[:30]
  assert sorted(first_pass) == sorted(np.repeat(np.arange(5), 6))  # Each record once a pass.


def _reading_the_step(fn_args_for, tiny_backbone, step_output, tmp_path):
  """(fn_args, config, paths) of a Tuner or Trainer given the step's records."""
  paths = RunPaths(feature_cache_dir=str(tmp_path / 'feature_cache'))
  fn_args = fn_args_for({'backbone': tiny_backbone}, paths=paths)
  fn_args.custom_config[feature_records.CUSTOM_CONFIG_KEY] = step_output
  return fn_args, ModuleConfig.from_custom_config(fn_args.custom_config), paths


def test_tuner_and_trainer_read_the_step_and_compute_nothing(
  step_output,
  fn_args_for,
  tiny_backbone,
  tmp_path,
):
  fn_args, config, paths = _reading_the_step(fn_args_for, tiny_backbone, step_output, tmp_path)
  data = training_data.prepare(fn_args, config, tft.TFTransformOutput(fn_args.transform_output))
  assert data.cached_features and data.feature_dim == 4
  features, labels = next(iter(data.train(8, Augmentation())))
  assert features.shape == (8, 4) and labels.shape == (8,)
  assert sum(len(y) for _, y in data.eval(8)) == 10
  assert data.steps_per_epoch(8) == training_data.MIN_STEPS_PER_EPOCH
  assert not os.path.exists(paths.feature_cache_dir)  # Nothing computed here.
  # Augmented copies are not in the step's records: computed here, once, and kept.
  data.train(8, Augmentation(flip=True))
  assert len(os.listdir(paths.feature_cache_dir)) == 2  # The .npz and its .json.


def test_a_trial_at_a_searched_image_size_reads_that_views_records(
  step_output,
  fn_args_for,
  tiny_backbone,
  transformed,
  tmp_path,
):
  import keras_tuner

  from modules.model import model

  fn_args, config, paths = _reading_the_step(fn_args_for, tiny_backbone, step_output, tmp_path)
  hp = keras_tuner.HyperParameters()
  hp.Choice('image_size', [SEARCHED_SIZE, MODULE.image_size], default=MODULE.image_size)
  data = training_data.prepare(
    fn_args,
    config,
    tft.TFTransformOutput(fn_args.transform_output),
    view=model.backbone_view(hp, config),  # As tuner_fn: the space's default view.
  )
  hp.values['image_size'] = SEARCHED_SIZE  # A trial that picks the smaller size.
  view = model.backbone_view(hp, config)
  assert view == (tiny_backbone, SEARCHED_SIZE)
  backbone = tf.saved_model.load(tiny_backbone)
  served = _batch_rows(list(data.eval(8, view)))
  np.testing.assert_allclose(
    served, _direct_features(transformed, backbone, 'eval', SEARCHED_SIZE), rtol=1e-5, atol=1e-6
  )
  stored = _direct_features(transformed, backbone, 'eval', MODULE.image_size)
  assert not np.allclose(served, stored)  # Not the stored size's features.
  features, _ = next(iter(data.train(8, Augmentation(), view)))
  assert features.shape == (8, 4)
  assert data.steps_per_epoch(8, view) == training_data.MIN_STEPS_PER_EPOCH
  assert not os.path.exists(paths.feature_cache_dir)  # Both views from the step's records.


def test_the_wrapped_executor_puts_the_artifacts_folder_into_custom_config():
  from tfx.types import standard_artifacts

  seen = {}

  class Stock:
    def Do(self, input_dict, output_dict, exec_properties):
      seen.update(exec_properties)

  class Wrapped(features_input.FeaturesIntoConfig, Stock):
    pass

  features = standard_artifacts.Examples()
  features.uri = '/root/BackboneFeatures/features/3'
  Wrapped().Do({'features': [features]}, {}, {'custom_config': json.dumps({'seed': 1})})
  assert json.loads(seen['custom_config']) == {
    'seed': 1,
    feature_records.CUSTOM_CONFIG_KEY: features.uri,
  }
  seen.clear()
  Wrapped().Do({}, {}, {'custom_config': json.dumps({'seed': 1})})  # No step: as it was.
  assert json.loads(seen['custom_config']) == {'seed': 1}


def test_the_step_covers_each_backbone_a_search_can_choose(tmp_path):
  assert backbone_features.views(MODULE) == [(MODULE.backbone, MODULE.image_size)]
  space = tmp_path / 'family.yaml'
  space.write_text(
    'backbone: {type: choice, values: [efficientnet-lite0, efficientnet-lite2], '
    'default: efficientnet-lite0}\n'
  )
  module = ModuleConfig(search_space=str(space), image_size=240)
  # Each at its own size, or at the stored size where that is smaller.
  assert backbone_features.views(module) == [
    ('efficientnet-lite0', 224),
    ('efficientnet-lite2', 240),
  ]
  # Each backbone at each searched image size, or --backbone at each.
  sizes = 'image_size: {type: int, min: 160, max: 224, step: 32, default: 224}\n'
  space.write_text(space.read_text() + sizes)
  assert backbone_features.views(module) == [
    (name, size)
    for name in ('efficientnet-lite0', 'efficientnet-lite2')
    for size in (160, 192, 224)
  ]
  space.write_text(sizes)
  assert backbone_features.views(module) == [('efficientnet-lite0', s) for s in (160, 192, 224)]
  # A size that only some trials search: the others see --image-size.
  space.write_text(
    'units: {type: choice, values: [64, 128], default: 64}\n'
    + sizes.replace('}', ', condition: {parent: units, values: [128]}}')
  )
  assert backbone_features.views(module) == [
    ('efficientnet-lite0', 160),
    ('efficientnet-lite0', 192),
    ('efficientnet-lite0', 224),
    ('efficientnet-lite0', 240),
  ]
  # The small CNN reads no image_size (the run refuses the space): no views of it.
  cnn = ModuleConfig(search_space=str(space), backbone='cnn', image_size=240)
  assert backbone_features.views(cnn) == [('cnn', 240)]
  assert backbone_features.applies(ModuleConfig(fine_tune=True))  # The head's phase reads it.
  assert not backbone_features.applies(ModuleConfig(backbone='cnn'))
  assert not backbone_features.applies(ModuleConfig(feature_cache=False))
