"""How a resized image is stored between Transform and the model, and the one way back.

Transform decodes and resizes each photo once and stores it as uint8 pixels: a
serialized `[size, size, 3]` uint8 tensor (`tf.io.serialize_tensor`), 150,550
bytes at 224 px before the gzip Transform writes with (about 120 KB per real
photo), where float32 pixels took 602 KB. The `[0, 1]` float conversion happens
after reading, in `model_input`, which both the input function (training,
tuning, the feature cache) and the exported model (serving) call: one
definition, so the model sees the same tensor either way.

Rounding the resized pixels to uint8 moves each value by at most half a step
(0.5 / 255); bench/io_formats.py compares this format with PNG and JPEG
re-encoding (JPEG is smaller but moves pixels by up to ~100 / 255 at edges;
PNG is lossless but costs ~14 ms an image to write and ~1 ms to read).
"""

import tensorflow as tf

# Part of the feature cache key (modules/training/feature_cache.py): bump when what is
# stored, or how `model_input` reads it, changes.
FORMAT = 'uint8-tensor-1'


def decode(data: tf.Tensor) -> tf.Tensor:
  """One encoded image (JPEG, PNG, GIF, BMP) -> [H, W, 3] uint8 RGB."""
  # JPEGs with libjpeg's accurate integer DCT, what Pillow and phones decode with:
  # TF's default (the fast DCT) differs by 1.3 levels on average, up to 20, and the
  # TFLite model is fed by those decoders (modules/model/tflite.py).
  # decode_image reads the others; channels=3 turns grayscale and CMYK into RGB, and
  # expand_animations=False keeps GIFs to one 3-D frame.
  return tf.cond(
    tf.io.is_jpeg(data),
    lambda: tf.io.decode_jpeg(data, channels=3, dct_method='INTEGER_ACCURATE'),
    lambda: tf.io.decode_image(data, channels=3, expand_animations=False),
  )


def decode_resize(encoded: tf.Tensor, image_size: int) -> tf.Tensor:
  """[N] encoded images (JPEG, PNG, GIF, BMP) -> [N, size, size, 3] uint8, rounded."""

  def decode_one(data):
    # Bilinear resizing of 0..255 values stays within 0..255; round, not truncate.
    resized = tf.image.resize(decode(data), [image_size, image_size])
    return tf.saturate_cast(tf.round(resized), tf.uint8)

  spec = tf.TensorSpec([image_size, image_size, 3], tf.uint8)
  return tf.map_fn(decode_one, encoded, fn_output_signature=spec)


def encode(images: tf.Tensor) -> tf.Tensor:
  """[N, size, size, 3] uint8 -> [N] strings, what Transform writes."""
  return tf.map_fn(tf.io.serialize_tensor, images, fn_output_signature=tf.string)


def to_unit_range(images: tf.Tensor) -> tf.Tensor:
  """uint8 pixels -> float32 in [0, 1].

  A product with the float32 constant 1/255, not a division: graph optimisers
  turn a division by a constant into that product in some graphs and not in
  others, which made the served and trained tensors differ by one bit.
  """
  return tf.cast(images, tf.float32) * tf.constant(1 / 255, tf.float32)


def model_input(stored: tf.Tensor, image_size: int) -> tf.Tensor:
  """[N] stored images (`encode`'s output) -> [N, size, size, 3] float32 in [0, 1].

  What the model is fed in training and in serving alike.
  """
  spec = tf.TensorSpec([image_size, image_size, 3], tf.uint8)
  pixels = tf.map_fn(
    lambda s: tf.ensure_shape(tf.io.parse_tensor(s, tf.uint8), spec.shape),
    tf.reshape(stored, [-1]),
    fn_output_signature=spec,
  )
  return to_unit_range(pixels)
