"""Input figures: decode+resize speed in plain tf.data, and transformed-example size and read speed.

- images/second of a plain tf.data decode + resize loop over the raw files
  (what Transform's throughput is compared against);
- bytes per transformed example as Transform writes it (float32 [H, W, 3]),
  and as the same pixels stored as uint8 bytes;
- images/second reading and parsing each form in batches, which bounds how fast
  the Trainer and Tuner can be fed without the feature cache.
Run by bench/run.py after a pipeline run, whose transformed examples it reads.
"""

import argparse
import os

from bench import common


def _records(files):
  import tensorflow as tf

  compression = 'GZIP' if files[0].endswith('.gz') else ''
  return [r.numpy() for r in tf.data.TFRecordDataset(files, compression_type=compression)]


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


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__)
  p.add_argument('--data-root', required=True)
  p.add_argument('--transformed', required=True, nargs='+', help='transformed example files')
  p.add_argument('--image-size', type=int, default=224)
  p.add_argument('--batch-size', type=int, default=32)
  p.add_argument('--work', required=True)
  p.add_argument('--json', required=True)
  args = p.parse_args(argv)
  import numpy as np
  import tensorflow as tf

  size = args.image_size
  raw = common.raw_files(args.data_root, 'train') + common.raw_files(args.data_root, 'validation')
  decode = common.decoded_dataset(raw, size).map(lambda image, label: image).batch(args.batch_size)
  figures = {'tfdata_decode_resize_images_per_second': _images_per_second(decode)}

  records = _records(args.transformed)
  pixels = [
    np.asarray(
      tf.train.Example.FromString(r).features.feature['image'].float_list.value, np.float32
    )
    for r in records
  ]
  figures['examples'] = len(records)
  figures['transform_bytes_per_example_on_disk'] = sum(
    os.path.getsize(f) for f in args.transformed
  ) / len(records)

  def write(name, feature):
    path = os.path.join(args.work, name)
    with tf.io.TFRecordWriter(path) as writer:
      for image in pixels:
        writer.write(
          tf.train.Example(
            features=tf.train.Features(feature={'image': feature(image)})
          ).SerializeToString()
        )
    return path

  as_float = write(
    'float32.tfrecord', lambda x: tf.train.Feature(float_list=tf.train.FloatList(value=x))
  )
  as_uint8 = write(
    'uint8.tfrecord',
    lambda x: tf.train.Feature(
      bytes_list=tf.train.BytesList(value=[np.round(x * 255).astype(np.uint8).tobytes()])
    ),
  )
  for name, path in (('float32', as_float), ('uint8', as_uint8)):
    figures[f'{name}_bytes_per_example'] = os.path.getsize(path) / len(records)

  shape = [size, size, 3]
  float_spec = {'image': tf.io.FixedLenFeature(shape, tf.float32)}
  bytes_spec = {'image': tf.io.FixedLenFeature([], tf.string)}
  repeat = max(1, 512 // len(records))  # Enough images to time.

  def read(path):
    return tf.data.TFRecordDataset(path).repeat(repeat).batch(args.batch_size)

  figures['float32_read_images_per_second'] = _images_per_second(
    read(as_float).map(lambda r: tf.io.parse_example(r, float_spec)['image'], tf.data.AUTOTUNE)
  )
  figures['uint8_read_images_per_second'] = _images_per_second(
    read(as_uint8).map(
      lambda r: tf.reshape(
        tf.cast(tf.io.decode_raw(tf.io.parse_example(r, bytes_spec)['image'], tf.uint8), tf.float32)
        / 255.0,
        [-1] + shape,
      ),
      tf.data.AUTOTUNE,
    )
  )
  # What uint8 storage costs in accuracy of the pixels: at most half a step of 1/255.
  figures['uint8_max_abs_error'] = float(
    max(np.abs(np.round(x * 255) / 255 - x).max() for x in pixels)
  )
  common.write(args.json, figures)


if __name__ == '__main__':
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
  main()
