"""One meaning for an epoch on every path, and --fine-tune as the head first, then the backbone.

On the tiny transformed data (30 train photos, 32 px): the epoch's steps are
the same on cached features and on images; a fine-tuned trial trains its head
on the cached features, then the whole model, and keeps the best of both.
"""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow_transform as tft

from modules.model.hypermodel import FlowerHyperModel
from modules.module_config import ModuleConfig
from modules.search import search_space
from modules.training import fine_tuning, training_data
from modules.training.augmentation import Augmentation


def _data(fn_args_for, **overrides):
  fn_args = fn_args_for(overrides)
  config = ModuleConfig.from_custom_config(fn_args.custom_config)
  output = tft.TFTransformOutput(fn_args.transform_output)
  return config, training_data.prepare(fn_args, config, output)


def test_an_epoch_is_the_same_training_on_features_and_on_images(fn_args_for):
  _, cached = _data(fn_args_for)
  _, images = _data(fn_args_for, feature_cache=False)
  assert cached.cached_features and not images.cached_features
  for batch_size in (4, 16):  # 30 photos: the floor of 50 steps on both paths.
    assert cached.steps_per_epoch(batch_size) == images.steps_per_epoch(batch_size) == 50
  # Images repeat: an epoch of 50 steps of 16 draws 800 photos from 30.
  assert sum(1 for _ in images.train(16, Augmentation()).take(50)) == 50
  _, fixed = _data(fn_args_for, feature_cache=False, steps_per_epoch=7)
  assert fixed.steps_per_epoch(4) == 7
  # Beyond the floor, one pass over the split.
  assert training_data.epoch_steps(3670, 32, ModuleConfig()) == 115


def test_count_examples_counts_every_record(fn_args_for, transformed):
  _, files, _ = transformed
  assert training_data.count_examples(files['train']) == 30
  assert training_data.count_examples(files['eval']) == 10


def _recorded(data, label, calls):
  """`data` whose training batches, when asked for, add `label` to `calls`."""

  def train(*args, **kwargs):
    calls.append(label)
    return data.train(*args, **kwargs)

  return dataclasses.replace(data, train=train)


@pytest.mark.parametrize('cache', [True, False])
def test_fine_tuning_trains_the_head_first_then_keeps_the_best_epoch(fn_args_for, cache):
  """The head's phase on cached features, or through the frozen backbone without the cache."""
  config, data = _data(fn_args_for, fine_tune=True, feature_cache=cache, steps_per_epoch=10)
  assert not data.cached_features and (data.head is not None) == cache
  calls = []
  data = _recorded(data, 'images', calls)
  if cache:
    data = dataclasses.replace(data, head=_recorded(data.head, 'features', calls))
  keras.utils.set_random_seed(0)
  trial = FlowerHyperModel(config, data, num_classes=5)
  hp = search_space.builtin().hyperparameters()
  classifier = trial.build(hp)
  history = trial.fit(hp, classifier, epochs=2, verbose=0)
  # The head (on features, or on images through the frozen backbone), then the whole model.
  assert calls == ['features' if cache else 'images', 'images']
  assert classifier.get_layer('backbone').trainable  # Frozen for the head's phase only.
  scores = history.history['val_accuracy']
  assert len(scores) == 3  # The head's last epoch, then each fine-tuning epoch.
  kept = classifier.evaluate(data.eval(config.batch_size), verbose=0)[1]
  assert kept == pytest.approx(max(scores), abs=1e-6)
  # The second phase ran at a tenth of the trial's learning rate.
  rate = float(keras.ops.convert_to_numpy(classifier.optimizer.learning_rate))
  assert rate == pytest.approx(hp.get('learning_rate') * fine_tuning.LEARNING_RATE_FACTOR)


def test_keep_best_ends_on_the_start_when_no_epoch_beats_it():
  x = np.random.default_rng(0).normal(size=(32, 2)).astype('float32')
  y = (x[:, 0] > 0).astype('int32')
  toy = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, activation='softmax')])
  toy.compile('adam', 'sparse_categorical_crossentropy', metrics=['accuracy'])
  start = [w.copy() for w in toy.get_weights()]
  keep = fine_tuning.KeepBest(start_score=2.0, start_weights=start)  # Unbeatable.
  toy.fit(x, y, validation_data=(x, y), epochs=2, verbose=0, callbacks=[keep])
  for kept, first in zip(toy.get_weights(), start):
    np.testing.assert_array_equal(kept, first)
  keep = fine_tuning.KeepBest(start_score=-1.0, start_weights=start)
  history = toy.fit(x, y, validation_data=(x, y), epochs=3, verbose=0, callbacks=[keep])
  best = int(np.argmax(history.history['val_accuracy']))
  assert keep.best == history.history['val_accuracy'][best]
  assert toy.evaluate(x, y, verbose=0)[1] == pytest.approx(keep.best)
