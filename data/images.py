"""Turns the bytes of one photo file into the RGB JPEG a flower record stores.

Called by ``data/convert.py`` for every file it finds. The pipeline decodes
``image/encoded`` with ``tf.io.decode_image(..., channels=3,
expand_animations=False)`` (``modules.preprocessing.decode_and_resize``); this
module decodes with the same call, so a file it accepts is one the pipeline can
read, and one it rejects would have failed there.
"""

JPEG_QUALITY = 95

# Leading bytes of the formats TensorFlow decodes, to name what a broken file was meant to be.
_MAGIC = ((b'\xff\xd8\xff', 'JPEG'), (b'\x89PNG', 'PNG'), (b'GIF8', 'GIF'), (b'BM', 'BMP'))


class BadImage(ValueError):
  """The file is not a photo the pipeline can decode; the message says why."""


def sniff_format(data):
  """'JPEG', 'PNG', 'GIF' or 'BMP' from the file's first bytes, else None."""
  for magic, name in _MAGIC:
    if data.startswith(magic):
      return name
  return None


def to_rgb_jpeg(data):
  """Returns (jpeg_bytes, height, width) for a photo file's bytes; raises BadImage.

  An RGB JPEG is kept byte for byte. Anything else TensorFlow decodes (PNG,
  GIF or BMP bytes, whatever the file name says; grayscale or CMYK JPEGs) is
  re-encoded as an RGB JPEG, so the stored bytes always match
  ``image/format: JPEG`` and ``image/channels: 3``.
  """
  import tensorflow as tf  # Imported here so importers (and their --help) stay fast.

  if not data:
    raise BadImage('empty file (0 bytes)')
  kind = sniff_format(data)
  try:
    image = tf.io.decode_image(data, channels=3, expand_animations=False)
  except tf.errors.InvalidArgumentError as e:
    if kind is None:
      raise BadImage('not an image: TensorFlow reads JPEG, PNG, GIF and BMP') from e
    raise BadImage(f'truncated or corrupt {kind}') from e
  height, width = int(image.shape[0]), int(image.shape[1])
  # extract_jpeg_shape reports the stored components: 1 for grayscale, 4 for CMYK.
  if kind == 'JPEG' and int(tf.io.extract_jpeg_shape(data)[2]) == 3:
    return data, height, width
  jpeg = tf.io.encode_jpeg(image, quality=JPEG_QUALITY)
  return jpeg.numpy(), height, width
