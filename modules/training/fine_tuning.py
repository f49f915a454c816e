"""--fine-tune as transfer learning does it: the head first, then the backbone's top layers.

`FlowerHyperModel.fit` (modules/model/hypermodel.py) calls `fit` for every trial
and the Trainer's final fit when the built-in model fine-tunes a SavedModel
backbone. Training a new head and the backbone together from the start sends
the random head's large gradients into the pretrained layers; on 80 real photos
that ended at 0.36 where the frozen model reaches about 0.8. So:

1. the head trains alone on the frozen backbone, on its cached features when
   there are some (`TrainingData.head`), else through the frozen backbone;
2. the chosen top layers (`fine_tune_layers`, else all) then train with the
   head at `LEARNING_RATE_FACTOR` times the learning rate;
3. the weights kept are the best on the validation split among the head's and
   each fine-tuned epoch's, so fine-tuning never ends below the frozen model it
   started from.

Each phase runs the fit's `epochs`. A trial Hyperband continues from its
checkpoint (`initial_epoch` > 0) is already past the first phase.
"""

from __future__ import annotations

from typing import Callable

import keras

from modules.search.search_space import OBJECTIVE as _OBJECTIVE

# Phase 2's learning rate: a tenth of the head's, the usual transfer-learning step.
LEARNING_RATE_FACTOR = 0.1


def backbone_layer(classifier: keras.Model) -> keras.layers.Layer:
  return classifier.get_layer('backbone')


def head_of(classifier: keras.Model, feature_dim: int) -> keras.Model:
  """The classifier's layers after its backbone as a model of their own (shared, not copied)."""
  layers = classifier.layers
  after = layers[layers.index(backbone_layer(classifier)) + 1 :]
  inputs = keras.Input(shape=(feature_dim,), name='features')
  x = inputs
  for layer in after:
    x = layer(x)
  return keras.Model(inputs, x, name='head')


class KeepBest(keras.callbacks.Callback):
  """Ends the fit on the weights of its best `val_accuracy` epoch, or on `start` if none beat it."""

  def __init__(self, start_score: float, start_weights):
    super().__init__()
    self.best, self.weights = start_score, start_weights

  def on_epoch_end(self, epoch, logs=None):
    score = (logs or {}).get(_OBJECTIVE)
    if score is not None and score > self.best:
      self.best, self.weights = score, self.model.get_weights()

  def on_train_end(self, logs=None):
    self.model.set_weights(self.weights)


def fit(
  classifier: keras.Model,
  compile_with: Callable[[keras.Model, float], None],
  fit_on: Callable[..., keras.callbacks.History],
  data,
  epochs: int,
  callbacks: list,
  **kwargs,
) -> keras.callbacks.History:
  """Both phases on `classifier` (see the module docstring); one History of all their epochs.

  `compile_with(model, factor)` compiles at `factor` times the trial's learning
  rate; `fit_on(data, model, epochs, callbacks, **kwargs)` fits on a
  TrainingData: `data` (images), or `data.head` (cached features; None: no cache).
  The caller's callbacks (checkpoints, pruning, progress) see the second phase:
  the first trains another model, the head alone.
  """
  if kwargs.get('initial_epoch'):
    return fit_on(data, classifier, epochs, callbacks, **kwargs)
  stop = [c for c in callbacks if not _reads_the_model(c)]
  quiet = {k: v for k, v in kwargs.items() if k == 'verbose'}
  if data.head is not None:
    head = head_of(classifier, data.head.feature_dim)
    compile_with(head, 1.0)
    first = fit_on(data.head, head, epochs, stop, **quiet)
  else:
    backbone_layer(classifier).trainable = False
    compile_with(classifier, 1.0)
    first = fit_on(data, classifier, epochs, stop, **quiet)
    backbone_layer(classifier).trainable = True
  # The head's last epoch: the weights the second phase starts from.
  start = (first.history.get(_OBJECTIVE) or [float('-inf')])[-1]
  compile_with(classifier, LEARNING_RATE_FACTOR)
  keep = KeepBest(start, classifier.get_weights())
  second = fit_on(data, classifier, epochs, [*callbacks, keep], **kwargs)
  # The search scores a trial by its History's best epoch: the head's last one counts too.
  for key, values in first.history.items():
    second.history[key] = [values[-1], *second.history.get(key, [])]
  return second


def _reads_the_model(callback) -> bool:
  """Callbacks tied to the trial's model (checkpoints, TensorBoard): not for the head phase."""
  return isinstance(callback, (keras.callbacks.ModelCheckpoint, keras.callbacks.TensorBoard)) or (
    type(callback).__module__.startswith('keras_tuner')
  )
