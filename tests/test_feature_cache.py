"""The frozen-backbone feature cache: right features, keyed on data and backbone, one model."""

import glob
import json
import os
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft

from modules import features, preprocessing
from modules import tuner as tuner_module
from modules.model import calibration, model
from modules.module_config import ModuleConfig, RunPaths
from modules.search import search_space
from modules.trainer import run_fn
from modules.training import feature_cache
from modules.training.inputs import input_fn
from tests.conftest import read_examples
from tests.test_model import _TinyFeatureExtractor
from tests.tiny import MODULE


class _OtherFeatureExtractor(_TinyFeatureExtractor):
  def __init__(self):
    super().__init__()
    self.kernel.assign(tf.random.stateless_normal([3, 4], seed=[7, 7]))


def _save(module, path):
  tf.saved_model.save(module, path)
  return path


@pytest.fixture(scope='module')
def saved_backbone(tmp_path_factory):
  return _save(_TinyFeatureExtractor(), str(tmp_path_factory.mktemp('backbone')))


def _features(fn_args, split='train', files=None, echo=None):
  config = ModuleConfig.from_custom_config(fn_args.custom_config)
  lines = []
  out = feature_cache.features_for(
    fn_args,
    config,
    tft.TFTransformOutput(fn_args.transform_output),
    split,
    files or (fn_args.train_files if split == 'train' else fn_args.eval_files),
    echo=lines.append,
  )
  return out, lines


def test_applies_only_to_a_frozen_savedmodel_backbone(saved_backbone):
  assert feature_cache.applies(ModuleConfig(backbone=saved_backbone))
  assert not feature_cache.applies(ModuleConfig(backbone='cnn'))  # Trains end to end.
  assert not feature_cache.applies(ModuleConfig(backbone=saved_backbone, fine_tune=True))
  assert not feature_cache.applies(ModuleConfig(backbone=saved_backbone, feature_cache=False))


def test_cached_features_are_the_backbones_output(fn_args_for, saved_backbone):
  fn_args = fn_args_for({'backbone': saved_backbone})
  (cached, labels), lines = _features(fn_args)
  assert 'computed' in lines[0]
  images, expected_labels = [], []
  for x, y in input_fn(
    fn_args.train_files,
    fn_args.data_accessor,
    tft.TFTransformOutput(fn_args.transform_output),
    8,
    image_size=MODULE.image_size,
    shuffle=False,
  ):
    images.append(x.numpy())
    expected_labels.append(np.reshape(y.numpy(), [-1]))
  images = np.concatenate(images)
  direct = tf.saved_model.load(saved_backbone)(tf.constant(images)).numpy()
  assert cached.dtype == np.float32 and cached.shape == (len(images), 4)
  np.testing.assert_allclose(cached, direct, rtol=1e-6, atol=1e-6)
  np.testing.assert_array_equal(labels, np.concatenate(expected_labels))

  # A second call reads the same arrays back instead of running the backbone again.
  (again, _), lines = _features(fn_args)
  assert 'from' in lines[0]
  np.testing.assert_array_equal(again, cached)


def test_other_data_or_backbone_get_another_key(fn_args_for, saved_backbone, tmp_path):
  fn_args = fn_args_for({'backbone': saved_backbone})
  config = ModuleConfig.from_custom_config(fn_args.custom_config)
  graph = fn_args.transform_graph_path
  key = feature_cache.key_of(feature_cache.describe(config, graph, fn_args.train_files, 'train'))

  # Same file name and size, one byte of one image changed: other data.
  changed = str(tmp_path / 'changed' / os.path.basename(fn_args.train_files[0]))
  os.makedirs(os.path.dirname(changed))
  shutil.copy(fn_args.train_files[0], changed)
  with open(changed, 'r+b') as f:
    f.seek(os.path.getsize(changed) // 2)
    byte = f.read(1)
    f.seek(-1, os.SEEK_CUR)
    f.write(bytes([byte[0] ^ 1]))
  assert os.path.getsize(changed) == os.path.getsize(fn_args.train_files[0])
  assert feature_cache.key_of(feature_cache.describe(config, graph, [changed], 'train')) != key

  other = _save(_OtherFeatureExtractor(), str(tmp_path / 'other_backbone'))
  other_config = ModuleConfig.from_custom_config({**fn_args.custom_config, 'backbone': other})
  assert (
    feature_cache.key_of(feature_cache.describe(other_config, graph, fn_args.train_files, 'train'))
    != key
  )
  # Other files under the same split name: other data.
  assert (
    feature_cache.key_of(feature_cache.describe(config, graph, fn_args.eval_files, 'train')) != key
  )

  # Another backbone computes its own features rather than reading the first one's.
  (first, _), _ = _features(fn_args)
  (second, _), lines = _features(fn_args_for({'backbone': other}))
  assert 'computed' in lines[0]
  assert not np.allclose(first, second)


def _jpegs(tiny_data, n):
  rows = read_examples(os.path.join(tiny_data, '*-validation.tfrecord-*'))[:n]
  return [r[features.IMAGE_KEY].bytes_list.value[0] for r in rows]


def test_search_and_training_on_cached_features_export_one_jpeg_model(
  fn_args_for, saved_backbone, tiny_data, tmp_path
):
  cache_dir = str(tmp_path / 'feature_cache')
  tune_args = fn_args_for(
    {'backbone': saved_backbone, 'max_epochs': 2, 'factor': 2},
    paths=RunPaths(feature_cache_dir=cache_dir),
  )
  result = tuner_module.tuner_fn(tune_args)
  result.tuner.search(**{**result.fit_kwargs, 'verbose': 0})
  # Trials train only the head: [N, 4] backbone features in.
  head = result.tuner.hypermodel.build(search_space.builtin().hyperparameters())
  assert head.input_shape == (None, 4)
  best = result.tuner.get_best_hyperparameters(1)[0]
  entries = sorted(glob.glob(os.path.join(cache_dir, '*.npz')))
  assert len(entries) == 2  # train and eval, once each for every trial

  train_args = fn_args_for(
    {'backbone': saved_backbone, 'epochs': 2},
    hyperparameters=best.get_config(),
    paths=RunPaths(feature_cache_dir=cache_dir),
  )
  run_fn(train_args)
  assert sorted(glob.glob(os.path.join(cache_dir, '*.npz'))) == entries  # reused, not recomputed

  exported = tf.saved_model.load(train_args.serving_model_dir)
  images = _jpegs(tiny_data, 3)
  out = exported.signatures['serving_jpeg'](images=tf.constant(images))
  probs = out['uncalibrated_probabilities'].numpy()
  assert probs.shape == (3, 5)
  np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
  # Served: the head's softmax at the temperature run_fn fitted on the eval split's features.
  temperature = float(exported.temperature.numpy())
  calibrated = calibration.rescale(probs, temperature)
  np.testing.assert_allclose(out['probabilities'].numpy(), calibrated, atol=1e-5)
  with open(os.path.join(train_args.serving_model_dir, calibration.CALIBRATION_FILE)) as f:
    fitted = json.load(f)
  assert fitted['temperature'] == pytest.approx(temperature) and fitted['split'] == 'eval'
  assert fitted['examples'] == 10  # Every eval photo of the tiny data, once.

  # The same numbers as the backbone and the trained head applied by hand.
  head = model.build_head(best, num_classes=5, feature_dim=4)
  head.load_weights(os.path.join(train_args.model_run_dir, 'checkpoints', 'epoch-002.weights.h5'))
  pixels = preprocessing.decode_and_resize(tf.constant(images), MODULE.image_size)
  direct = head(tf.saved_model.load(saved_backbone)(pixels)).numpy()
  np.testing.assert_allclose(probs, direct, atol=1e-5)
  keras.backend.clear_session()
