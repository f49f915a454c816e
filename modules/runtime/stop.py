"""A request to stop the run, and the points in the search and training that honour it.

The local runner's Ctrl-C handler (tfx_pipeline/local/interrupt.py) calls
`request()`, and raises KeyboardInterrupt itself. That exception can be lost:
one that lands in a finalizer or a weakref callback is printed as "Exception
ignored in ..." and the run goes on. So the search and the Trainer also check
between batches (`keras_callback`) and before each trial (`check`), and raise
it again until the run has stopped.
"""

from __future__ import annotations

import threading

_requested = threading.Event()


def request() -> None:
  _requested.set()


def withdraw() -> None:
  """Forgets the request (once the run has stopped, or in a test)."""
  _requested.clear()


def requested() -> bool:
  return _requested.is_set()


def check() -> None:
  """Raises KeyboardInterrupt if the run was asked to stop."""
  if _requested.is_set():
    raise KeyboardInterrupt('stop requested')


def keras_callback():
  """A Keras callback that stops `fit` at the next batch once the run was asked to stop."""
  import keras  # Here, so that the runner can import this module before TensorFlow.

  class StopOnRequest(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
      check()

    def on_test_batch_end(self, batch, logs=None):
      check()

  return StopOnRequest()
