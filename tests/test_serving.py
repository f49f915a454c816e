"""The exported model feeds its Keras model exactly the tensor training fed it."""

import os

import keras
import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from modules import features
from modules.model import serving
from modules.training.inputs import input_fn
from tests.conftest import read_examples
from tests.tiny import MODULE


def test_served_and_trained_tensors_are_identical_for_the_same_jpeg(
  fn_args_for, tiny_data, tmp_path
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
  model = keras.Sequential(
    [
      keras.Input((MODULE.image_size, MODULE.image_size, 3)),
      keras.layers.Flatten(),
      keras.layers.Dense(5, activation='softmax'),
    ]
  )
  export_dir = str(tmp_path / 'exported')
  serving.export(
    model, tf_transform_output, ['a', 'b', 'c', 'd', 'e'], export_dir, MODULE.image_size
  )
  exported = tf.saved_model.load(export_dir)

  rows = read_examples(os.path.join(tiny_data, '*-validation.tfrecord-*'))
  jpegs = tf.constant([r[features.IMAGE_KEY].bytes_list.value[0] for r in rows])
  served = exported.model_input(jpegs).numpy()
  assert served.shape == trained.shape and served.dtype == trained.dtype == np.float32
  # Each served tensor is bit for bit one of the trained ones (Beam need not keep order).
  differences = np.abs(served[:, None] - trained[None]).max(axis=(2, 3, 4))
  assert (differences.min(axis=1) == 0).all()
  assert sorted(differences.argmin(axis=1)) == list(range(len(trained)))

  # And the served probabilities are the model's on those tensors.
  probabilities = exported.signatures['serving_jpeg'](images=jpegs)['probabilities'].numpy()
  np.testing.assert_allclose(probabilities, model(served).numpy(), rtol=0, atol=1e-6)
