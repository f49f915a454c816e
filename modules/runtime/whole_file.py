"""Whole-file writes: a reader finds no file or the complete one, never part of one.

A run stopped by Ctrl-C, a killed worker or a full disk leaves at most a
temporary file beside the target, under a name that is this process's own
(a parallel search's workers write the same files at once).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from typing import Iterator, Union


@contextlib.contextmanager
def writing(path: str) -> Iterator[str]:
  """A temporary name beside `path` to write a file or a folder to; renamed to `path` at the end.

  If the block raises, what was written is removed and `path` is left as it was.
  """
  partial = f'{path}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}'
  try:
    yield partial
    _rename(partial, path)
  except BaseException:
    _remove(partial)
    raise


def write(path: str, contents: Union[bytes, str]) -> None:
  """Writes `contents` to `path` whole or not at all."""
  with writing(path) as partial:
    with _open(partial, 'wb' if isinstance(contents, bytes) else 'w') as f:
      f.write(contents)


def _remote(path: str) -> bool:
  return '://' in path


def _open(path: str, mode: str):
  if _remote(path):
    import tensorflow as tf  # Only for remote paths: the runners write local files before TF.

    return tf.io.gfile.GFile(path, mode)
  return open(path, mode)


def _rename(partial: str, path: str) -> None:
  if _remote(path):
    import tensorflow as tf

    tf.io.gfile.rename(partial, path, overwrite=True)
  else:
    os.replace(partial, path)


def _remove(partial: str) -> None:
  if _remote(partial):
    import tensorflow as tf

    if tf.io.gfile.exists(partial):
      tf.io.gfile.rmtree(partial) if tf.io.gfile.isdir(partial) else tf.io.gfile.remove(partial)
  elif os.path.isdir(partial):
    shutil.rmtree(partial, ignore_errors=True)
  elif os.path.exists(partial):
    os.remove(partial)
