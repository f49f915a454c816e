"""Helpers every benchmark step shares: the raw-record reader, timing, and the JSON it reports."""

import argparse
import json
import os
import resource
import time

from modules.features import IMAGE_KEY, LABEL_KEY


def peak_rss_mb() -> float:
  """This process's peak resident memory (Linux reports KiB)."""
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def raw_files(data_root: str, split: str) -> list:
  """The flower TFRecords of one split ('train' or 'validation') in the published layout."""
  import glob

  return sorted(glob.glob(os.path.join(data_root, f'*-{split}.tfrecord-*')))


def decoded_dataset(files, image_size: int):
  """(image in [0, 1], label) pairs, decoded and resized in tf.data: the classic recipe."""
  import tensorflow as tf

  spec = {
    IMAGE_KEY: tf.io.FixedLenFeature([], tf.string),
    LABEL_KEY: tf.io.FixedLenFeature([], tf.int64),
  }

  def parse(record):
    example = tf.io.parse_single_example(record, spec)
    image = tf.io.decode_jpeg(example[IMAGE_KEY], channels=3)
    image = tf.image.resize(image, [image_size, image_size]) / 255.0
    return image, example[LABEL_KEY]

  return tf.data.TFRecordDataset(files, num_parallel_reads=tf.data.AUTOTUNE).map(
    parse, num_parallel_calls=tf.data.AUTOTUNE
  )


def step_parser(description: str) -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(description=description)
  p.add_argument('--data-root', required=True)
  p.add_argument('--backbone', required=True, help='SavedModel path of the feature extractor')
  p.add_argument('--image-size', type=int, default=224)
  p.add_argument(
    '--tuner',
    choices=('hyperband', 'random'),
    default='hyperband',
    help='hyperband (the benchmark search), or random: --max-trials trials of --max-epochs',
  )
  p.add_argument('--max-epochs', type=int, default=3)
  p.add_argument('--factor', type=int, default=2)
  p.add_argument('--max-trials', type=int, default=1, help='random search only')
  p.add_argument('--batch-size', type=int, default=32)
  p.add_argument('--seed', type=int, default=42)
  p.add_argument('--work', required=True, help='scratch folder')
  p.add_argument('--json', required=True, help='where to write the figures')
  return p


def search(hypermodel, args, project_name: str):
  """keras-tuner's Hyperband (or random search) as the benchmark steps run it, under --work."""
  import tempfile

  import keras_tuner

  from modules.search import search_space

  common = dict(
    # The pipeline's built-in space, declared up front as the pipeline's tuner does.
    hyperparameters=search_space.builtin().hyperparameters(),
    objective=search_space.OBJECTIVE,
    seed=args.seed,
    directory=tempfile.mkdtemp(dir=args.work),
    project_name=project_name,
  )
  if args.tuner == 'random':
    return keras_tuner.RandomSearch(hypermodel, max_trials=args.max_trials, **common)
  return keras_tuner.Hyperband(hypermodel, max_epochs=args.max_epochs, factor=args.factor, **common)


def early_stopping():
  """The pipeline's early stopping: on the objective, with its default patience."""
  import keras

  from modules.module_config import ModuleConfig
  from modules.search.search_space import OBJECTIVE

  return keras.callbacks.EarlyStopping(
    monitor=OBJECTIVE, mode='max', patience=ModuleConfig().early_stopping_patience
  )


# Where the real-photo and search benchmarks keep their results (bench/results/NAME.json and .md).
RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'results')


def save_results(name: str, result: dict, text: str) -> None:
  """Writes `result` as RESULTS/name.json and `text` as RESULTS/name.md, and prints `text`."""
  os.makedirs(RESULTS, exist_ok=True)
  with open(os.path.join(RESULTS, f'{name}.json'), 'w') as f:
    json.dump(result, f, indent=1)
  with open(os.path.join(RESULTS, f'{name}.md'), 'w') as f:
    f.write(text)
  print(text)


def write(path: str, figures: dict) -> None:
  figures['peak_rss_mb'] = round(peak_rss_mb(), 1)
  with open(path, 'w') as f:
    json.dump(figures, f, indent=1)


class Timer:
  def __enter__(self):
    self.start = time.monotonic()
    return self

  def __exit__(self, *_):
    self.seconds = time.monotonic() - self.start
