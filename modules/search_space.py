"""The hyperparameter search space, defined once with its defaults.

`tuner_fn` searches it; `run_fn` falls back to its defaults when tuning is off.
"""

import keras_tuner

# What the search maximises (and the Tuner's early stopping watches).
OBJECTIVE = 'val_accuracy'


def define(hp: keras_tuner.HyperParameters) -> None:
  """Declares every hyperparameter the model builder reads."""
  hp.Int('units', 64, 256, step=64, default=128)
  hp.Choice('dense_activation', ['relu', 'tanh', 'sigmoid'], default='relu')
  hp.Choice('learning_rate', [1e-2, 1e-3, 1e-4], default=1e-3)
  hp.Choice('optimizer', ['sgd', 'adam'], default='adam')


def defaults() -> keras_tuner.HyperParameters:
  """The search space with every value at its default."""
  hp = keras_tuner.HyperParameters()
  define(hp)
  return hp


def public_values(values: dict) -> dict:
  """Hyperparameter values (`hp.values`) without keras-tuner's bookkeeping (tuner/epochs, ...)."""
  return {k: v for k, v in values.items() if not k.startswith('tuner/')}
