"""`preprocessing_fn` for TFX Transform: JPEG bytes -> resized uint8 image, stored compactly.

The same graph is embedded in the exported model, so serving decodes and resizes
exactly as training did; both then turn the stored pixels into the model's
`[0, 1]` floats with `image_codec.model_input` (modules/image_codec.py).
"""

import tensorflow as tf
import tensorflow_transform as tft

from modules import features, image_codec
from modules.module_config import ModuleConfig


def decode_and_resize(encoded: tf.Tensor, image_size: int) -> tf.Tensor:
  """[N] encoded images -> [N, size, size, 3] float32 in [0, 1]: exactly what the model sees.

  Decoded, resized and rounded to uint8 as Transform stores them, then scaled
  as `image_codec.model_input` does after reading them back.
  """
  return image_codec.to_unit_range(image_codec.decode_resize(encoded, image_size))


def preprocessing_fn(inputs, custom_config=None):
  """Transform's entry point: decodes and resizes images and records the class names."""
  config = ModuleConfig.from_custom_config(custom_config)
  # SchemaGen infers FixedLenFeature([1]), so features arrive as [N, 1].
  encoded = tf.reshape(inputs[features.IMAGE_KEY], [-1])
  pixels = image_codec.decode_resize(encoded, config.image_size)
  outputs = {features.IMAGE: image_codec.encode(pixels)}

  label = tf.reshape(inputs[features.LABEL_KEY], [-1])
  outputs[features.LABEL] = label
  # Class names come from the data: every "<id>:<name>" pair becomes a
  # vocabulary entry that training and serving read back (modules.labels).
  text = tf.reshape(inputs[features.LABEL_TEXT_KEY], [-1])
  pairs = tf.strings.join([tf.strings.as_string(label), text], separator=':')
  tft.vocabulary(pairs, vocab_filename=features.LABEL_NAMES_VOCAB)
  return outputs
