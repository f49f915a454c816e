"""Data augmentation in the training input only: random flip, rotation and zoom, as switches.

The search space turns each on with a boolean hyperparameter (`augment_flip`,
`augment_rotation`, `augment_zoom`); `HyperModel.fit` reads them
(modules/model/hypermodel.py). It never runs in Transform, so evaluation and serving
see the photos as they are. On images it runs in the tf.data pipeline, a new
random draw every epoch; with cached backbone features the head trains on the
features of a fixed number of augmented copies of each training image
(modules/training/feature_cache.py).
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf

# The strength of each switch: a horizontal flip, a rotation of up to 0.1 of a
# turn (36 degrees) either way, and a zoom of up to 20% in or out.
ROTATION_FACTOR = 0.1
ZOOM_FACTOR = 0.2


@dataclasses.dataclass(frozen=True)
class Augmentation:
  flip: bool = False
  rotation: bool = False
  zoom: bool = False

  @property
  def any(self) -> bool:
    return self.flip or self.rotation or self.zoom

  def describe(self) -> str:
    on = [name for name in ('flip', 'rotation', 'zoom') if getattr(self, name)]
    return '+'.join(on) or 'none'

  def layers(self, seed: int = 0) -> list:
    """Keras 3 preprocessing layers for the switches that are on (random only when training)."""
    import keras

    layers = []
    if self.flip:
      layers.append(keras.layers.RandomFlip('horizontal', seed=seed))
    if self.rotation:
      layers.append(keras.layers.RandomRotation(ROTATION_FACTOR, fill_mode='reflect', seed=seed))
    if self.zoom:
      layers.append(keras.layers.RandomZoom(ZOOM_FACTOR, fill_mode='reflect', seed=seed))
    return layers

  def apply(self, dataset: tf.data.Dataset, seed: int = 0) -> tf.data.Dataset:
    """(images, labels) batches, each image augmented; the same dataset with every switch off."""
    layers = self.layers(seed)
    if not layers:
      return dataset

    def augment(images, labels):
      for layer in layers:
        images = layer(images, training=True)
      # Rotation and zoom interpolate: keep pixels in [0, 1] as the model expects.
      return tf.clip_by_value(images, 0.0, 1.0), labels

    return dataset.map(augment, num_parallel_calls=tf.data.AUTOTUNE)
