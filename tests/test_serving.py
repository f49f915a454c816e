"""The exported model feeds its Keras model exactly the tensor training fed it, and calibrates."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft

from modules import features
from modules.model import calibration, serving
from modules.training.inputs import input_fn
from tests.conftest import read_examples
from tests.tiny import MODULE

FITTED = calibration.Fitted(2.5, 'eval', 10, 0.2, 0.1, 1.0, 0.9)


@pytest.fixture
def exported(fn_args_for, tiny_data, tmp_path):
  """A softmax over pixels exported at temperature 2.5: (Keras model, loaded export, its folder)."""
  fn_args = fn_args_for()
  model = keras.Sequential(
    [
      keras.Input((MODULE.image_size, MODULE.image_size, 3)),
      keras.layers.Flatten(),
      keras.layers.Dense(5, activation='softmax'),
    ]
  )
  export_dir = str(tmp_path / 'exported')
  tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
  names = ['a', 'b', 'c', 'd', 'e']
  serving.export(model, tf_transform_output, names, export_dir, MODULE.image_size, FITTED)
  return model, tf.saved_model.load(export_dir), export_dir


def _jpegs(tiny_data):
  rows = read_examples(os.path.join(tiny_data, '*-validation.tfrecord-*'))
  return tf.constant([r[features.IMAGE_KEY].bytes_list.value[0] for r in rows])


def test_served_and_trained_tensors_are_identical_for_the_same_jpeg(
  fn_args_for, tiny_data, exported
):
  fn_args = fn_args_for()
  tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
  trained = np.concatenate(
    [
      x.numpy()
      for x, _ in input_fn(
        fn_args.eval_files,
        fn_args.data_accessor,
        tf_transform_output,
        4,
        image_size=MODULE.image_size,
        shuffle=False,
      )
    ]
  )
  _, loaded, _ = exported
  served = loaded.model_input(_jpegs(tiny_data)).numpy()
  assert served.shape == trained.shape and served.dtype == trained.dtype == np.float32
  # Each served tensor is bit for bit one of the trained ones (Beam need not keep order).
  differences = np.abs(served[:, None] - trained[None]).max(axis=(2, 3, 4))
  assert (differences.min(axis=1) == 0).all()
  assert sorted(differences.argmin(axis=1)) == list(range(len(trained)))


def test_served_probabilities_are_the_models_at_the_fitted_temperature(tiny_data, exported):
  model, loaded, export_dir = exported
  jpegs = _jpegs(tiny_data)
  out = loaded.signatures['serving_jpeg'](images=jpegs)
  own = model(loaded.model_input(jpegs)).numpy()
  np.testing.assert_allclose(out['uncalibrated_probabilities'].numpy(), own, rtol=0, atol=1e-6)
  calibrated = out['probabilities'].numpy()
  np.testing.assert_allclose(calibrated, calibration.rescale(own, 2.5), rtol=0, atol=1e-5)
  assert not np.allclose(calibrated, own, atol=1e-3)  # T = 2.5 flattens them.
  # The same class, so the same accuracy; the temperature is kept with the model.
  assert (out['class_id'].numpy() == own.argmax(-1)).all()
  assert float(loaded.temperature.numpy()) == 2.5
  with open(os.path.join(export_dir, calibration.CALIBRATION_FILE)) as f:
    assert calibration.Fitted(**json.load(f)) == FITTED
