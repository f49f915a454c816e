"""build_model for each backbone kind: the built-in CNN and a SavedModel backbone."""

import numpy as np
import pytest
import tensorflow as tf

from modules.model.model import build_model
from modules.module_config import ModuleConfig
from modules.search import search_space


class _TinyFeatureExtractor(tf.Module):
  """An image -> feature-vector SavedModel like a TF-Hub feature_vector module."""

  def __init__(self):
    super().__init__()
    self.kernel = tf.Variable(tf.random.stateless_normal([3, 4], seed=[1, 2]), name='kernel')

  @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
  def __call__(self, images):
    return tf.nn.relu(tf.matmul(tf.reduce_mean(images, axis=[1, 2]), self.kernel))


@pytest.fixture(scope='module')
def saved_backbone(tmp_path_factory):
  path = str(tmp_path_factory.mktemp('backbone'))
  tf.saved_model.save(_TinyFeatureExtractor(), path)
  return path


def _fit_once(model, size):
  rng = np.random.default_rng(0)
  x = rng.uniform(size=(8, size, size, 3)).astype('float32')
  y = np.arange(8) % 3
  model.fit(x, y, epochs=1, verbose=0)


def _backbone_kernel(model):
  return model.get_layer('backbone')._module.kernel.numpy().copy()


def test_builtin_cnn_outputs_class_probabilities():
  model = build_model(
    search_space.defaults(), ModuleConfig(image_size=32, backbone='cnn'), num_classes=5
  )
  probs = model.predict(np.zeros((2, 32, 32, 3), 'float32'), verbose=0)
  assert probs.shape == (2, 5)
  np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
  assert model.loss.get_config()['from_logits'] is False


def test_model_reads_the_hyperparameters():
  hp = search_space.defaults()
  hp.values.update(units=64, dense_activation='tanh', optimizer='sgd', learning_rate=1e-2)
  model = build_model(hp, ModuleConfig(image_size=32, backbone='cnn'), num_classes=3)
  hidden = model.layers[-2]
  assert hidden.units == 64 and hidden.activation.__name__ == 'tanh'
  assert model.optimizer.__class__.__name__ == 'SGD'
  assert float(model.optimizer.learning_rate) == pytest.approx(1e-2)


def test_savedmodel_backbone_is_frozen_by_default(saved_backbone):
  config = ModuleConfig(image_size=32, backbone=saved_backbone)
  model = build_model(search_space.defaults(), config, num_classes=3)
  before = _backbone_kernel(model)
  head_before = model.layers[-1].get_weights()[0].copy()
  _fit_once(model, 32)
  np.testing.assert_array_equal(_backbone_kernel(model), before)
  assert not np.allclose(model.layers[-1].get_weights()[0], head_before)


def test_savedmodel_backbone_fine_tunes_when_asked(saved_backbone):
  config = ModuleConfig(image_size=32, backbone=saved_backbone, fine_tune=True)
  model = build_model(search_space.defaults(), config, num_classes=3)
  before = _backbone_kernel(model)
  _fit_once(model, 32)
  assert not np.allclose(_backbone_kernel(model), before)


def test_savedmodel_backbone_model_exports(saved_backbone, tmp_path):
  config = ModuleConfig(image_size=32, backbone=saved_backbone)
  model = build_model(search_space.defaults(), config, num_classes=3)
  x = np.random.default_rng(1).uniform(size=(2, 32, 32, 3)).astype('float32')
  expected = model.predict(x, verbose=0)
  model.export(str(tmp_path / 'exported'), verbose=False)
  reloaded = tf.saved_model.load(str(tmp_path / 'exported'))
  np.testing.assert_allclose(reloaded.serve(x).numpy(), expected, atol=1e-5)


def test_search_space_defaults():
  assert search_space.defaults().values == {
    'units': 128,
    'dense_activation': 'relu',
    'learning_rate': 1e-3,
    'optimizer': 'adam',
  }


def test_a_searched_image_size_resizes_the_images_for_a_savedmodel_backbone(saved_backbone):
  from modules.model.model import backbone_view

  hp = search_space.defaults()
  hp.Choice('image_size', [32, 48], default=32)
  config = ModuleConfig(image_size=64, backbone=saved_backbone)
  assert backbone_view(hp, config) == (saved_backbone, 32)
  model = build_model(hp, config, num_classes=3)
  assert model.input_shape == (None, 64, 64, 3)  # The stored images, resized in the model.
  assert model.get_layer('backbone_size').get_config()['height'] == 32
  plain = build_model(search_space.defaults(), config, num_classes=3)
  assert 'backbone_size' not in [layer.name for layer in plain.layers]
  # The small CNN and a user's builder do not read it: the stored size, as without it.
  assert backbone_view(hp, ModuleConfig(image_size=64, backbone='cnn')) == ('cnn', 64)
  builder = ModuleConfig(image_size=64, hypermodel='examples.flower_builder:model_builder')
  assert backbone_view(hp, builder) == ('efficientnet-lite0', 64)
  # A searched backbone sees the trial's size too, not its own.
  hp.Choice('backbone', ['efficientnet-lite0', 'efficientnet-lite2'], default='efficientnet-lite2')
  assert backbone_view(hp, ModuleConfig(image_size=260)) == ('efficientnet-lite2', 32)
