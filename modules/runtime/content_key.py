"""Content keys: a short sha256 of what a search, a cache entry or a staged file is made of.

The tuning state (modules/tuning/state.py), the feature cache, the converted
backbone, the user-code fingerprint (tfx_pipeline/code_version.py), the data
check and the staged --hparams-from file are each found again by such a key:
the same contents give the same key, on any machine and in any folder.
"""

from __future__ import annotations

import hashlib
from typing import Union

_CHUNK = 1 << 20


class ContentKey:
  """A sha256 fed part by part; each part ends with `end` (a NUL unless told otherwise)."""

  def __init__(self):
    self._sha = hashlib.sha256()

  def add(self, part: Union[bytes, str], end: bytes = b'\0') -> 'ContentKey':
    self._sha.update((part.encode() if isinstance(part, str) else part) + end)
    return self

  def add_file(self, path: str, end: bytes = b'\0') -> 'ContentKey':
    """Adds the file's contents, read in chunks (a `gs://` path through TensorFlow)."""
    with _open(path) as f:
      while chunk := f.read(_CHUNK):
        self._sha.update(chunk)
    self._sha.update(end)
    return self

  def digest(self) -> bytes:
    return self._sha.digest()

  def hex(self, length: int = 16) -> str:
    """The key: the first `length` hex digits."""
    return self._sha.hexdigest()[:length]


def of(part: Union[bytes, str], length: int = 16) -> str:
  """The key of one string or byte string, as it is."""
  return ContentKey().add(part, end=b'').hex(length)


def _open(path: str):
  if '://' in path:
    import tensorflow as tf  # Only for remote paths: the runners read local files before TF.

    return tf.io.gfile.GFile(path, 'rb')
  return open(path, 'rb')
