"""`build_model(hp)`: the classifier the Tuner searches over and the Trainer trains.

Backbone -> Dense(units, dense_activation) -> Dense(num_classes, softmax).
"""
import keras
import keras_tuner

from modules import backbone, features, search_space
from modules.module_config import ModuleConfig


def build_model(hp: keras_tuner.HyperParameters, config: ModuleConfig,
                num_classes: int) -> keras.Model:
  """Builds and compiles the model for one set of hyperparameters."""
  search_space.define(hp)
  size = config.image_size
  inputs = keras.Input(shape=(size, size, 3), name=features.IMAGE)
  x = backbone.build_backbone(config.backbone, config.fine_tune)(inputs)
  x = keras.layers.Dense(hp.get('units'), activation=hp.get('dense_activation'))(x)
  outputs = keras.layers.Dense(num_classes, activation='softmax', name='probabilities')(x)
  model = keras.Model(inputs, outputs, name='flower_classifier')

  optimizers = {'adam': keras.optimizers.Adam, 'sgd': keras.optimizers.SGD}
  model.compile(
      optimizer=optimizers[hp.get('optimizer')](learning_rate=hp.get('learning_rate')),
      # The head ends in softmax, so the loss gets probabilities, not logits.
      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=False),
      metrics=['accuracy'])
  return model
