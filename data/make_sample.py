"""Generate the small synthetic flower dataset committed under ``data/sample/``.

The pipeline reads flower photos from TFRecord files in the published flower
format (``image_classification_builder-{split}.tfrecord-NNNNN-of-NNNNN``, one
``tf.train.Example`` per JPEG).  The real photos are large, so the default run
uses this stand-in instead: a few hundred small JPEGs, each a stylised flower
drawn with numpy and Pillow, written in exactly that format.  Every class has
its own colour and petal shape, so a small CNN learns it in a few epochs on a
CPU, and jitter in position, scale, rotation, petal count, brightness and
background keeps the images from being identical.

Everything is derived from ``--seed``: rerunning the script with the same
arguments (and the same Pillow/TensorFlow versions) writes byte-identical files.

Usage::

    python -m data.make_sample [--out data/sample] [--train-per-class 40]
                               [--eval-per-class 10] [--test-per-class 10] [--seed 0]
"""

import argparse
import io
import os

import numpy as np

from data import records
from data.drawing import draw_flower

# Published label ids of the flower TFRecords (do not reorder).
CLASS_NAMES = ('roses', 'sunflowers', 'daisy', 'dandelion', 'tulips')

TRAIN_SHARDS = 2
EVAL_SHARDS = 1
JPEG_QUALITY = 85


def encode_jpeg(img):
  """Baseline RGB JPEG bytes at a fixed quality (deterministic for a given Pillow)."""
  buf = io.BytesIO()
  img.save(buf, format='JPEG', quality=JPEG_QUALITY, optimize=False, progressive=False)
  return buf.getvalue()


# --------------------------------------------------------------------------- records


def make_records(seed, split_id, first_index, per_class):
  """(filename, label, jpeg, width, height) tuples for one split, in shuffled order.

  Image ``i`` of class ``c`` (``i`` counts from ``first_index``, which continues
  after the train images for validation, and after those for test) gets its own
  generator seeded from (seed, c, i): images do not depend on each other, no two
  splits share a seed, and ``i`` is also the number in the file name.
  """
  rows = []
  for label, name in enumerate(CLASS_NAMES):
    for i in range(first_index, first_index + per_class):
      rng = np.random.Generator(np.random.PCG64([seed, label, i]))
      img = draw_flower(rng, label)
      rows.append((f'{name}_{i:04d}.jpg', label, encode_jpeg(img), *img.size))
  order = np.random.Generator(np.random.PCG64([seed, 1000 + split_id])).permutation(len(rows))
  return [rows[k] for k in order]


def write_split(out_dir, split, examples, num_shards):
  """Write ``examples`` as ``num_shards`` consecutive uncompressed TFRecord shards."""
  import tensorflow as tf  # imported here so --help and the drawing code stay fast

  paths = []
  for shard, chunk in enumerate(np.array_split(np.arange(len(examples)), num_shards)):
    path = os.path.join(out_dir, records.shard_name(split, shard, num_shards))
    with tf.io.TFRecordWriter(path) as writer:
      for k in chunk:
        filename, label, jpeg, width, height = examples[k]
        writer.write(records.to_example(filename, label, CLASS_NAMES[label], jpeg, width, height))
    paths.append(path)
  return paths


# --------------------------------------------------------------------------- CLI


def parse_args(argv=None):
  parser = argparse.ArgumentParser(
    prog='python -m data.make_sample',
    description='Write a small deterministic synthetic flower dataset in the '
    'published flower TFRecord format.',
  )
  parser.add_argument(
    '--out',
    default=os.path.join('data', 'sample'),
    help='output folder for the TFRecord files (default: %(default)s)',
  )
  parser.add_argument(
    '--train-per-class',
    type=int,
    default=40,
    help='training images per class (default: %(default)s)',
  )
  parser.add_argument(
    '--eval-per-class',
    type=int,
    default=10,
    help='validation images per class (default: %(default)s)',
  )
  parser.add_argument(
    '--test-per-class',
    type=int,
    default=10,
    help='test images per class, scored by the Evaluator alone; 0 writes no test shards '
    '(default: %(default)s)',
  )
  parser.add_argument(
    '--seed',
    type=int,
    default=0,
    help='seed for every random choice; same seed, same bytes (default: %(default)s)',
  )
  args = parser.parse_args(argv)
  if args.train_per_class < 1 or args.eval_per_class < 1 or args.seed < 0:
    parser.error('--train-per-class and --eval-per-class must be >= 1, --seed >= 0')
  if args.test_per_class < 0:
    parser.error('--test-per-class must be >= 0')
  return args


def main(argv=None):
  args = parse_args(argv)
  os.makedirs(args.out, exist_ok=True)
  counts = (
    ('train', args.train_per_class, TRAIN_SHARDS),
    ('validation', args.eval_per_class, EVAL_SHARDS),
    ('test', args.test_per_class, EVAL_SHARDS),
  )
  paths, first = [], 0
  for split_id, (split, per_class, shards) in enumerate(counts):
    if per_class:
      rows = make_records(args.seed, split_id, first, per_class)
      paths += write_split(args.out, split, rows, shards)
    first += per_class
  total = sum(os.path.getsize(p) for p in paths)
  print(
    f'Wrote {len(paths)} files ({total / 1e6:.2f} MB) to {args.out}: '
    + ' + '.join(f'{n} {split}' for split, n, _ in counts if n)
    + f' images per class x {len(CLASS_NAMES)} classes.'
  )


if __name__ == '__main__':
  main()
