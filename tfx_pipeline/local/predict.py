"""`run_local.py predict`: classifies photos with the latest pushed model (or its TFLite model)."""

from __future__ import annotations

import os
from typing import Callable, Iterator, List, Optional, Tuple

import tensorflow as tf

from modules import features


def latest_pushed_model(serving_model_dir: str) -> str:
  """The newest timestamped model folder Pusher wrote under `serving_model_dir`."""
  versions = [
    d
    for d in (os.listdir(serving_model_dir) if os.path.isdir(serving_model_dir) else [])
    if d.isdigit()
  ]
  if not versions:
    raise FileNotFoundError(
      f'no pushed model in {serving_model_dir}: run `python run_local.py` '
      'first, or pass --model-dir.'
    )
  return os.path.join(serving_model_dir, max(versions, key=int))


def check_model_dir(model_dir: str) -> str:
  """`model_dir` if it is an exported model's folder; raises cli_paths.PathError if not."""
  from tfx_pipeline import cli_paths

  what = 'a model folder Pusher wrote, <pipeline-root>/serving_model/<pipeline>/<version>'
  cli_paths.existing_folder('--model-dir', model_dir, what)
  if not os.path.isfile(os.path.join(model_dir, 'saved_model.pb')):
    raise cli_paths.PathError(f'--model-dir {model_dir}: no saved_model.pb in it; pass {what}.')
  return model_dir


def iter_photos(paths: List[str], limit: int) -> Iterator[Tuple[str, bytes, str]]:
  """(name, encoded image, true class or '') for image files and flower TFRecord files.

  A TFRecord file contributes up to `limit` photos, named by image/filename.
  """
  for path in paths:
    if not os.path.isfile(path):
      raise FileNotFoundError(f'{path}: no such photo or TFRecord file.')
    if '.tfrecord' in os.path.basename(path):
      for record in tf.data.TFRecordDataset(path).take(limit):
        example = tf.train.Example.FromString(record.numpy()).features.feature
        name = example[features.FILENAME_KEY].bytes_list.value[0].decode()
        truth = example[features.LABEL_TEXT_KEY].bytes_list.value
        yield (
          f'{os.path.basename(path)}:{name}',
          example[features.IMAGE_KEY].bytes_list.value[0],
          truth[0].decode() if truth else '',
        )
    else:
      with open(path, 'rb') as f:
        yield path, f.read(), ''


# A photo's encoded bytes -> (class name, calibrated probability), or None if it does not decode.
_Classify = Callable[[bytes], Optional[Tuple[str, float]]]


def _saved_model(model_dir: str) -> _Classify:
  classify = tf.saved_model.load(model_dir).signatures['serving_jpeg']

  def one(encoded: bytes):
    try:
      out = classify(images=tf.constant([encoded]))
    except tf.errors.InvalidArgumentError:
      return None
    return out['class_name'][0].numpy().decode(), float(tf.reduce_max(out['probabilities'][0]))

  return one


def tflite_file(model_dir: str) -> str:
  """The pushed model.tflite in `model_dir`; FileNotFoundError saying why there is none."""
  from modules.model import tflite

  path = os.path.join(model_dir, tflite.TFLITE_FILE)
  if not os.path.isfile(path):
    raise FileNotFoundError(
      f'--tflite: no {tflite.TFLITE_FILE} in {model_dir}: the run had --no-tflite, or its int8 '
      "accuracy fell more than --max-tflite-drop below the SavedModel's (tflite.json says)."
    )
  return path


def _tflite(model_dir: str) -> _Classify:
  """The TFLite model, fed as a device app feeds it: decoded and resized in Python."""
  import numpy as np

  from modules.model import tflite

  with open(tflite_file(model_dir), 'rb') as f:
    classifier = tflite.Classifier(f.read())
  with open(os.path.join(model_dir, tflite.LABELS_FILE)) as f:
    names = f.read().splitlines()

  def one(encoded: bytes):
    try:
      image = tflite.device_input(encoded, classifier.image_size)
    except OSError:  # Pillow's UnidentifiedImageError is one.
      return None
    probabilities = classifier.one(image)
    return names[int(np.argmax(probabilities))], float(np.max(probabilities))

  return one


def predict(
  model_dir: str, paths: List[str], limit: int = 5, echo=print, tflite: bool = False
) -> List[dict]:
  """Prints and returns the top class and its probability for each photo.

  The served `probabilities`: calibrated by the temperature baked into the model;
  with `tflite`, those of the pushed int8 model.tflite.
  """
  for path in paths:  # Before the model takes its seconds to load.
    if not os.path.isfile(path):
      raise FileNotFoundError(f'{path}: no such photo or TFRecord file.')
  classify = _tflite(model_dir) if tflite else _saved_model(model_dir)
  echo(f'model: {tflite_file(model_dir) if tflite else model_dir}')
  rows = []
  for name, encoded, truth in iter_photos(paths, limit):
    top = classify(encoded)
    if top is None:
      echo(f'{name}: not a decodable image (JPEG, PNG, GIF or BMP), skipped')
      continue
    row = {'photo': name, 'class_name': top[0], 'probability': top[1], 'truth': truth}
    rows.append(row)
    note = f'  (true: {truth})' if truth else ''
    echo(f'{name}: {row["class_name"]} {row["probability"]:.1%}{note}')
  return rows
