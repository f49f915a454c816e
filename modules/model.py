"""The classifier the Tuner searches over and the Trainer trains.

Backbone -> Dense(units, dense_activation) -> Dense(num_classes, softmax).
`build_head` is the searched part on its own (features in); `build_model` puts
it on the backbone. A frozen SavedModel backbone trains only the head, on
features computed once (modules/feature_cache.py); `attach` then joins the
trained head to the backbone for export.
"""

import keras
import keras_tuner

from modules import backbone, features, search_space
from modules.module_config import ModuleConfig


def build_head(hp: keras_tuner.HyperParameters, num_classes: int, feature_dim: int) -> keras.Model:
  """The compiled head for one set of hyperparameters: [N, feature_dim] -> [N, num_classes]."""
  search_space.define(hp)
  inputs = keras.Input(shape=(feature_dim,), name='features')
  x = keras.layers.Dense(hp.get('units'), activation=hp.get('dense_activation'))(inputs)
  outputs = keras.layers.Dense(num_classes, activation='softmax', name='probabilities')(x)
  head = keras.Model(inputs, outputs, name='head')
  _compile(head, hp)
  return head


def attach(
  feature_extractor: keras.layers.Layer, head: keras.Model, image_size: int
) -> keras.Model:
  """Images -> `feature_extractor` -> the head's own layers (shared, not copied)."""
  inputs = keras.Input(shape=(image_size, image_size, 3), name=features.IMAGE)
  x = feature_extractor(inputs)
  # The head's layers, not the head as one nested layer: the classifier keeps
  # a flat layer list (backbone, hidden, probabilities) whichever way it was built.
  for layer in head.layers[1:]:
    x = layer(x)
  return keras.Model(inputs, x, name='flower_classifier')


def build_model(
  hp: keras_tuner.HyperParameters, config: ModuleConfig, num_classes: int
) -> keras.Model:
  """Builds and compiles backbone + head for one set of hyperparameters."""
  feature_extractor = backbone.build_backbone(config.backbone, config.fine_tune)
  size = config.image_size
  feature_dim = feature_extractor.compute_output_shape((None, size, size, 3))[-1]
  model = attach(feature_extractor, build_head(hp, num_classes, feature_dim), size)
  _compile(model, hp)
  return model


def _compile(model: keras.Model, hp: keras_tuner.HyperParameters) -> None:
  optimizers = {'adam': keras.optimizers.Adam, 'sgd': keras.optimizers.SGD}
  model.compile(
    optimizer=optimizers[hp.get('optimizer')](learning_rate=hp.get('learning_rate')),
    # The head ends in softmax, so the loss gets probabilities, not logits.
    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=False),
    metrics=['accuracy'],
  )
