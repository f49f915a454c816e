"""run_fn trains on transformed data and exports a model that classifies raw JPEGs."""

import glob
import os

import numpy as np
import tensorflow as tf

from modules import features
from modules.trainer import run_fn
from tests.conftest import read_examples


def _jpegs(tiny_data, n):
  rows = read_examples(os.path.join(tiny_data, '*-validation.tfrecord-*'))[:n]
  return (
    [r[features.IMAGE_KEY].bytes_list.value[0] for r in rows],
    [r[features.LABEL_TEXT_KEY].bytes_list.value[0].decode() for r in rows],
  )


def test_run_fn_exports_a_jpeg_classifier(fn_args_for, tiny_data):
  fn_args = fn_args_for()
  run_fn(fn_args)

  model = tf.saved_model.load(fn_args.serving_model_dir)
  assert set(model.signatures) == {'serving_default', 'serving_jpeg'}
  images, _ = _jpegs(tiny_data, 3)
  out = model.signatures['serving_jpeg'](images=tf.constant(images))
  probs = out['probabilities'].numpy()
  assert probs.shape == (3, 5)
  np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
  names = [n.decode() for n in out['class_name'].numpy()]
  expected = ['roses', 'sunflowers', 'daisy', 'dandelion', 'tulips']
  assert names == [expected[i] for i in probs.argmax(axis=1)]

  # The tf.Example signature (what TFMA feeds) agrees with the JPEG one.
  serialized = [
    tf.train.Example(
      features=tf.train.Features(
        feature={features.IMAGE_KEY: tf.train.Feature(bytes_list=tf.train.BytesList(value=[img]))}
      )
    ).SerializeToString()
    for img in images
  ]
  by_example = model.signatures['serving_default'](examples=tf.constant(serialized))
  np.testing.assert_allclose(by_example['probabilities'].numpy(), probs, atol=1e-5)

  assert glob.glob(os.path.join(fn_args.model_run_dir, 'checkpoints', 'epoch-002.weights.h5'))
  assert glob.glob(os.path.join(fn_args.model_run_dir, 'train', 'events.out.tfevents.*'))


def test_run_fn_uses_the_given_hyperparameters(fn_args_for):
  from modules.search import search_space

  hp = search_space.defaults()
  hp.values.update(units=64, dense_activation='sigmoid')
  fn_args = fn_args_for({'epochs': 1}, hyperparameters=hp.get_config(), train_steps=2)
  run_fn(fn_args)
  shapes = [
    shape
    for _, shape in tf.train.list_variables(
      os.path.join(fn_args.serving_model_dir, 'variables', 'variables')
    )
  ]
  # efficientnet-lite0 features (1280, the default backbone) -> hidden Dense(64) -> 5 classes.
  assert [1280, 64] in shapes and [64, 5] in shapes and [1280, 128] not in shapes
