"""Input figures: how a resized image could be stored between Transform and the model.

For each candidate form of a resized image (float32 pixels, the uint8 pixels
Transform stores now, PNG, JPEG at quality 95), on real photos (the shard in
../shared/flowers, when present) and on the benchmark's synthetic ones:
- bytes per example in a GZIP TFRecord, as Transform writes its output;
- milliseconds per image to write it (encode + serialize + gzip);
- images/second to read it back as the model's [0, 1] floats, in batches;
- the largest pixel error against float32 pixels never rounded.
Also the images/second of a plain tf.data decode + resize over the raw files,
and the bytes per example of the pipeline's own transformed examples. Run by
bench/run.py.
"""

import argparse
import glob
import os

from bench import common

FORMATS = ('float32', 'uint8', 'png', 'jpeg95')
REAL_PHOTOS = os.path.join(
  os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), 'shared', 'flowers'
)


def _images_per_second(dataset, passes=2):
  """Best of `passes` full passes (the first also warms up tf.data and the file cache)."""
  best = 0.0
  for _ in range(passes):
    count = 0
    with common.Timer() as t:
      for images in dataset:
        count += int(images.shape[0])
    best = max(best, count / t.seconds)
  return best


def _codecs(size):
  """name -> (encode [N] photos -> feature values, tf.train.Feature of one value, spec, read)."""
  import tensorflow as tf

  from modules import image_codec

  def pixels(encoded):
    return image_codec.decode_resize(encoded, size)

  def each(fn, dtype):
    return lambda encoded: tf.map_fn(fn, pixels(encoded), fn_output_signature=dtype)

  def decode_each(decode):
    spec = tf.TensorSpec([size, size, 3], tf.uint8)
    return lambda s: image_codec.to_unit_range(tf.map_fn(decode, s, fn_output_signature=spec))

  def as_bytes(value):
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))

  string = tf.io.FixedLenFeature([], tf.string)
  return {
    # What Transform wrote before: resized pixels / 255, never rounded.
    'float32': (
      lambda encoded: tf.reshape(_float_pixels(encoded, size), [-1, size * size * 3]),
      lambda value: tf.train.Feature(float_list=tf.train.FloatList(value=value)),
      tf.io.FixedLenFeature([size, size, 3], tf.float32),
      lambda x: x,
    ),
    'uint8': (
      lambda encoded: image_codec.encode(pixels(encoded)),
      as_bytes,
      string,
      lambda s: image_codec.model_input(s, size),
    ),
    'png': (
      each(tf.io.encode_png, tf.string),
      as_bytes,
      string,
      decode_each(lambda s: tf.io.decode_png(s, channels=3)),
    ),
    'jpeg95': (
      each(lambda image: tf.io.encode_jpeg(image, quality=95), tf.string),
      as_bytes,
      string,
      decode_each(lambda s: tf.io.decode_jpeg(s, channels=3)),
    ),
  }


def _float_pixels(encoded, size):
  """[N] photos -> [N, size, size, 3] float32 in [0, 1], resized and never rounded."""
  import tensorflow as tf

  def one(photo):
    image = tf.io.decode_image(photo, channels=3, expand_animations=False)
    return tf.image.resize(image, [size, size]) / 255.0

  return tf.map_fn(one, encoded, fn_output_signature=tf.TensorSpec([size, size, 3], tf.float32))


def _photos(files, limit):
  import tensorflow as tf

  from modules.features import IMAGE_KEY

  spec = {IMAGE_KEY: tf.io.FixedLenFeature([], tf.string)}
  return [
    tf.io.parse_single_example(record, spec)[IMAGE_KEY].numpy()
    for record in tf.data.TFRecordDataset(files).take(limit)
  ]


def measure(photos, size, work, batch_size=32):
  """Per format: bytes/example (GZIP TFRecord), write ms/image, read images/s, max error."""
  import numpy as np
  import tensorflow as tf

  encoded = tf.constant(photos)
  reference = _float_pixels(encoded, size).numpy()
  figures = {}
  for name, (encode, feature, spec, read) in _codecs(size).items():
    encode = tf.function(encode, input_signature=[tf.TensorSpec([None], tf.string)])
    encode(encoded[:2])  # Traced before the clock starts.
    path = os.path.join(work, f'{name}.tfrecord.gz')
    with common.Timer() as write:
      values = [
        encode(encoded[i : i + batch_size]).numpy() for i in range(0, len(photos), batch_size)
      ]
      with tf.io.TFRecordWriter(path, options='GZIP') as writer:
        for value in (v for batch in values for v in batch):
          example = tf.train.Example(features=tf.train.Features(feature={'image': feature(value)}))
          writer.write(example.SerializeToString())
    repeat = max(1, 512 // len(photos))  # Enough images to time.
    dataset = (
      tf.data.TFRecordDataset(path, compression_type='GZIP')
      .repeat(repeat)
      .batch(batch_size)
      .map(
        lambda r, spec=spec, read=read: read(tf.io.parse_example(r, {'image': spec})['image']),
        num_parallel_calls=tf.data.AUTOTUNE,
      )
    )
    first = next(iter(dataset.unbatch().batch(len(photos)).take(1)))
    figures[name] = {
      'bytes_per_example': os.path.getsize(path) / len(photos),
      'write_ms_per_image': 1000 * write.seconds / len(photos),
      'read_images_per_second': _images_per_second(dataset),
      'max_abs_error': float(np.abs(first.numpy() - reference).max()),
    }
  return figures


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__)
  p.add_argument('--data-root', required=True)
  p.add_argument('--transformed', nargs='*', default=[], help="the pipeline's transformed files")
  p.add_argument('--image-size', type=int, default=224)
  p.add_argument('--batch-size', type=int, default=32)
  p.add_argument('--photos', type=int, default=200, help='synthetic photos to measure on')
  p.add_argument('--work', required=True)
  p.add_argument('--json', required=True)
  args = p.parse_args(argv)
  import tensorflow as tf

  size = args.image_size
  raw = common.raw_files(args.data_root, 'train') + common.raw_files(args.data_root, 'validation')
  decode = common.decoded_dataset(raw, size).map(lambda image, label: image).batch(args.batch_size)
  figures = {'tfdata_decode_resize_images_per_second': _images_per_second(decode)}
  if args.transformed:
    examples = sum(1 for _ in tf.data.TFRecordDataset(args.transformed, compression_type='GZIP'))
    figures['transform_bytes_per_example_on_disk'] = (
      sum(os.path.getsize(f) for f in args.transformed) / examples
    )
  figures['formats'] = {
    'synthetic': measure(_photos(raw, args.photos), size, args.work, args.batch_size)
  }
  real = sorted(glob.glob(os.path.join(REAL_PHOTOS, '*.tfrecord*')))
  if real:
    figures['formats']['real'] = measure(_photos(real, 1000), size, args.work, args.batch_size)
    figures['real_photos'] = len(_photos(real, 1000))
  common.write(args.json, figures)


if __name__ == '__main__':
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
  main()
