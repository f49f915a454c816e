"""`preprocessing_fn` for TFX Transform: JPEG bytes -> normalised image tensor.

The same graph is embedded in the exported model, so serving decodes and resizes
exactly as training did.
"""

import tensorflow as tf
import tensorflow_transform as tft

from modules import features
from modules.module_config import ModuleConfig


def decode_and_resize(encoded: tf.Tensor, image_size: int) -> tf.Tensor:
  """Decodes a batch of encoded images ([N] strings) to [N, size, size, 3] in [0, 1]."""

  def decode_one(data):
    # decode_image also reads PNG/GIF/BMP, and channels=3 turns grayscale and
    # CMYK into RGB; expand_animations=False keeps GIFs to one 3-D frame.
    image = tf.io.decode_image(data, channels=3, expand_animations=False)
    image = tf.image.resize(image, [image_size, image_size])
    return image / 255.0

  spec = tf.TensorSpec([image_size, image_size, 3], tf.float32)
  return tf.map_fn(decode_one, encoded, fn_output_signature=spec)


def preprocessing_fn(inputs, custom_config=None):
  """Transform's entry point: decodes images and records the class names."""
  config = ModuleConfig.from_custom_config(custom_config)
  # SchemaGen infers FixedLenFeature([1]), so features arrive as [N, 1].
  encoded = tf.reshape(inputs[features.IMAGE_KEY], [-1])
  outputs = {features.IMAGE: decode_and_resize(encoded, config.image_size)}

  label = tf.reshape(inputs[features.LABEL_KEY], [-1])
  outputs[features.LABEL] = label
  # Class names come from the data: every "<id>:<name>" pair becomes a
  # vocabulary entry that training and serving read back (modules.labels).
  text = tf.reshape(inputs[features.LABEL_TEXT_KEY], [-1])
  pairs = tf.strings.join([tf.strings.as_string(label), text], separator=':')
  tft.vocabulary(pairs, vocab_filename=features.LABEL_NAMES_VOCAB)
  return outputs
