"""The published flower TFRecord format: file names and the tf.train.Example schema.

Both writers of flower TFRecords use it: ``data/make_sample.py`` (the synthetic
sample) and ``data/convert.py`` (photo folders).
"""

FILE_PREFIX = 'image_classification_builder'
# Beside the shards of a converted folder: the class names, line N (from 0) for label id N.
LABELS_FILE = 'labels.txt'
SPLITS = ('train', 'validation', 'test')


def shard_prefix(split):
  """File name up to the shard numbers, e.g. ``image_classification_builder-train``."""
  return f'{FILE_PREFIX}-{split}'


# Beam's shard template for the rest of the name: ``.tfrecord-00000-of-00002``.
SHARD_TEMPLATE = '.tfrecord-SSSSS-of-NNNNN'


def shard_name(split, shard, num_shards):
  """``image_classification_builder-{split}.tfrecord-NNNNN-of-NNNNN``."""
  return f'{shard_prefix(split)}.tfrecord-{shard:05d}-of-{num_shards:05d}'


def to_example(filename, label, class_name, jpeg, width, height):
  """Serialized tf.train.Example in the published flower TFRecord schema.

  ``jpeg`` must be baseline RGB JPEG bytes: the record says so in
  ``image/format``, ``image/colorspace`` and ``image/channels``.
  """
  # Imported here so importers (and their --help) stay fast.
  import tensorflow as tf

  def b(value):
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))

  def i(value):
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))

  features = {
    'image/encoded': b(jpeg),
    'image/class/label': i(label),
    'image/class/text': b(class_name.encode()),
    'image/filename': b(filename.encode()),
    'image/format': b(b'JPEG'),
    'image/colorspace': b(b'RGB'),
    'image/channels': i(3),
    'image/height': i(height),
    'image/width': i(width),
  }
  example = tf.train.Example(features=tf.train.Features(feature=features))
  # The feature map's key order otherwise varies between runs; sorted keys give stable bytes.
  return example.SerializeToString(deterministic=True)
