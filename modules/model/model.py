"""The built-in classifier the Tuner searches over and the Trainer trains.

Backbone -> [Dropout(dropout)] -> Dense(units, dense_activation) -> Dense(num_classes, softmax).
`build_head` is the searched part on its own (features in); `build_model` puts
it on the backbone. A frozen SavedModel backbone trains only the head, on
features computed once (modules/training/feature_cache.py); `attach` then joins the
trained head to the backbone for export.

The hyperparameters come from the search space (modules/search/search_space.py):
`units`, `dense_activation`, `learning_rate` and `optimizer` always; `dropout`,
`label_smoothing`, `momentum` (SGD only), `fine_tune_layers` (--fine-tune
only), `backbone` and `image_size` where the space declares them, and otherwise
off (all layers, for fine-tuning; --backbone; the backbone's own size). A
searched backbone sees its own image size, or the trial's `image_size`: the
model resizes the stored images first (`backbone_view`). A user's
`--hypermodel` replaces all of this (modules/model/builder.py).
"""

from typing import Optional, Tuple

import keras
import keras_tuner

from modules import features
from modules.backbones import backbone
from modules.module_config import BUILTIN_BACKBONE, ModuleConfig, native_image_size


def optional(hp: keras_tuner.HyperParameters, name: str, fallback=None):
  """The active value of `name`, or `fallback` where the space leaves it out (or it is inactive)."""
  return hp.get(name) if name in hp.values else fallback


def build_head(hp: keras_tuner.HyperParameters, num_classes: int, feature_dim: int) -> keras.Model:
  """The compiled head for one set of hyperparameters: [N, feature_dim] -> [N, num_classes]."""
  inputs = keras.Input(shape=(feature_dim,), name='features')
  x = inputs
  dropout = optional(hp, 'dropout', 0.0)
  if dropout:
    x = keras.layers.Dropout(dropout, name='dropout')(x)
  x = keras.layers.Dense(hp.get('units'), activation=hp.get('dense_activation'))(x)
  outputs = keras.layers.Dense(num_classes, activation='softmax', name='probabilities')(x)
  head = keras.Model(inputs, outputs, name='head')
  compile_model(head, hp)
  return head


def reads_image_size(config: ModuleConfig) -> bool:
  """Whether the built-in model reads a searched `image_size`: on a SavedModel backbone only."""
  return not config.hypermodel and config.backbone != BUILTIN_BACKBONE


def backbone_view(hp: keras_tuner.HyperParameters, config: ModuleConfig) -> Tuple[str, int]:
  """(backbone, the image size it sees) for a trial.

  --backbone at --image-size; where the space declares `backbone`, that one at
  its own size, or at the stored --image-size where that is smaller; where it
  declares `image_size` (and the model reads it), that backbone at that size.
  """
  chosen = optional(hp, 'backbone')
  size = optional(hp, 'image_size') if reads_image_size(config) else None
  if size is not None:
    return chosen or config.backbone, size
  if chosen is None:
    return config.backbone, config.image_size
  return chosen, min(native_image_size(chosen), config.image_size)


def attach(
  feature_extractor: keras.layers.Layer,
  head: keras.Model,
  image_size: int,
  backbone_size: Optional[int] = None,
) -> keras.Model:
  """Images -> [resize to `backbone_size`] -> `feature_extractor` -> the head's own layers.

  The head's layers are shared, not copied. The resize is `tf.image.resize`'s
  bilinear, as Transform's and the cached features'.
  """
  inputs = keras.Input(shape=(image_size, image_size, 3), name=features.IMAGE)
  x = inputs
  if backbone_size and backbone_size != image_size:
    x = keras.layers.Resizing(backbone_size, backbone_size, name='backbone_size')(x)
  x = feature_extractor(x)
  # The head's layers, not the head as one nested layer: the classifier keeps
  # a flat layer list (backbone, hidden, probabilities) whichever way it was built.
  for layer in head.layers[1:]:
    x = layer(x)
  return keras.Model(inputs, x, name='flower_classifier')


def fine_tunes(config: ModuleConfig) -> bool:
  """Whether the built-in model fine-tunes a SavedModel backbone (training/fine_tuning.py)."""
  return config.fine_tune and config.backbone != BUILTIN_BACKBONE and not config.hypermodel


def fine_tune_layers(hp: keras_tuner.HyperParameters, config: ModuleConfig) -> Optional[int]:
  """How many top backbone layers train: read only when a SavedModel backbone is fine-tuned."""
  if not config.fine_tune or config.backbone == BUILTIN_BACKBONE:
    return None
  return optional(hp, 'fine_tune_layers')


def build_model(
  hp: keras_tuner.HyperParameters, config: ModuleConfig, num_classes: int
) -> keras.Model:
  """Builds and compiles backbone + head for one set of hyperparameters."""
  handle, size = backbone_view(hp, config)
  feature_extractor = backbone.build_backbone(
    handle, config.fine_tune, top_layers=fine_tune_layers(hp, config)
  )
  feature_dim = feature_extractor.compute_output_shape((None, size, size, 3))[-1]
  head = build_head(hp, num_classes, feature_dim)
  model = attach(feature_extractor, head, config.image_size, size)
  compile_model(model, hp)
  return model


@keras.saving.register_keras_serializable(package='flower_tuner')
class SmoothedSparseCrossentropy(keras.losses.Loss):
  """Cross-entropy of probabilities against integer labels smoothed towards uniform.

  Keras' SparseCategoricalCrossentropy has no label smoothing; this one-hots
  the labels and smooths them as CategoricalCrossentropy(label_smoothing=...) does.
  """

  def __init__(self, label_smoothing: float, name='smoothed_sparse_crossentropy', **kwargs):
    super().__init__(name=name, **kwargs)
    self.label_smoothing = label_smoothing

  def call(self, y_true, y_pred):
    labels = keras.ops.cast(keras.ops.reshape(y_true, [-1]), 'int32')
    one_hot = keras.ops.one_hot(labels, y_pred.shape[-1], dtype=y_pred.dtype)
    return keras.losses.categorical_crossentropy(
      one_hot, y_pred, label_smoothing=self.label_smoothing
    )

  def get_config(self):
    return {**super().get_config(), 'label_smoothing': self.label_smoothing}


def compile_model(
  model: keras.Model, hp: keras_tuner.HyperParameters, learning_rate_factor: float = 1.0
) -> None:
  """Optimizer, loss and the `accuracy` metric the objective (val_accuracy) reads.

  `learning_rate_factor` scales the trial's learning rate (fine-tuning's second phase).
  """
  learning_rate = hp.get('learning_rate') * learning_rate_factor
  if hp.get('optimizer') == 'sgd':
    optimizer = keras.optimizers.SGD(learning_rate, momentum=optional(hp, 'momentum', 0.0))
  else:
    optimizer = keras.optimizers.Adam(learning_rate)
  smoothing = optional(hp, 'label_smoothing', 0.0)
  model.compile(
    optimizer=optimizer,
    # The head ends in softmax, so the loss gets probabilities, not logits.
    loss=SmoothedSparseCrossentropy(smoothing)
    if smoothing
    else keras.losses.SparseCategoricalCrossentropy(from_logits=False),
    metrics=['accuracy'],
  )
