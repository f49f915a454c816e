"""A `tuner_fn` for tests of parallel searches: the real one, plus a log line per fit.

With `hang_once` in custom_config, the first fit of the whole search blocks
forever (after saying so in a marker file), so a test can kill its worker.
"""

import os
import time

import keras

from modules import tuner as tuner_module


class LogFits(keras.callbacks.Callback):
  def __init__(self, log: str, hang_once: bool):
    super().__init__()
    self.log, self.hang_once = log, hang_once

  def on_train_begin(self, logs=None):
    with open(self.log, 'a') as f:
      f.write(f'{os.environ.get("KERASTUNER_TUNER_ID", "-")} {os.getpid()}\n')
    if self.hang_once:
      try:  # O_EXCL: exactly one fit of the search hangs.
        fd = os.open(self.log + '.hung', os.O_CREAT | os.O_EXCL | os.O_WRONLY)
      except FileExistsError:
        return
      os.write(fd, str(os.getpid()).encode())
      os.close(fd)
      while True:
        time.sleep(1)


def tuner_fn(fn_args):
  result = tuner_module.tuner_fn(fn_args)
  config = fn_args.custom_config
  result.fit_kwargs['callbacks'].append(LogFits(config['fit_log'], config.get('hang_once', False)))
  result.fit_kwargs['verbose'] = 0
  return result
