"""What a finished run must have made: the Tuner's hyperparameters, a pushed model that predicts."""

import glob
import os

import keras_tuner

from tests import tiny
from tfx_pipeline.local import predict, results


def _photo(tmp_path, data_root):
  """One encoded photo from the data, written as a .jpg file."""
  ((name, encoded, truth),) = predict.iter_photos(
    glob.glob(os.path.join(data_root, '*.tfrecord-*'))[:1], 1
  )
  path = tmp_path / 'photo.jpg'
  path.write_bytes(encoded)
  return str(path), truth


def check_hyperparameters(summary, names):
  """The Tuner's best hyperparameters: `names` among them, as the summary shows them."""
  hp = keras_tuner.HyperParameters.from_config(
    results.best_hyperparameters(summary.best_hyperparameters_uri)
  )
  assert names <= set(hp.values)
  assert summary.best_hyperparameters == {
    k: v for k, v in hp.values.items() if not k.startswith('tuner/')
  }


def check_outputs(summary, tmp_path, data_root):
  """A pushed model with an accuracy, that names a class for a photo of the data."""
  assert 0.0 <= summary.accuracy <= 1.0
  assert summary.pushed_model and os.path.isdir(summary.pushed_model)
  photo, _ = _photo(tmp_path, data_root)
  (row,) = predict.predict(summary.pushed_model, [photo], echo=lambda *_: None)
  assert row['class_name'] in tiny.CLASSES and 0.0 < row['probability'] <= 1.0
