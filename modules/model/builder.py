"""A user's `--hypermodel MODULE:FUNCTION`: loading the function, calling it, checking its model.

The contract: `FUNCTION(hp)` returns a compiled `keras.Model` that takes
`[N, size, size, 3]` float images in [0, 1] (size: --image-size) and returns
`[N, classes]` probabilities (a softmax), compiled with
`metrics=['accuracy']` (the search maximises `val_accuracy`). Labels are
integer class ids (a sparse loss). If the function also takes `num_classes`
or `image_size` arguments, it gets the data's class count and --image-size.
A builder that breaks the contract fails the first build with one line
naming the function and the problem (`HypermodelError`, a keras-tuner
`FatalError`, so the search stops there instead of retrying). The runners
load it before any component (tfx_pipeline/local/preflight.py).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import os
import sys
from typing import Callable, Iterable, Optional

import keras
import keras_tuner
import numpy as np

from modules.module_config import split_reference
from modules.search import search_space

# The checkout's root: relative module paths are found from there too (the
# Vertex AI image keeps the same layout under /pipeline).
PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Keyword arguments a builder may take beside `hp`, filled from the data and options.
BUILDER_KEYWORDS = ('num_classes', 'image_size')


class HypermodelError(keras_tuner.errors.FatalError, ValueError):
  """A `--hypermodel` that cannot be loaded or breaks the contract: one line saying why."""


def is_file_reference(reference: str) -> bool:
  module, _ = split_reference(reference)
  return module.endswith('.py') or os.sep in module or '/' in module


def module_file(reference: str) -> Optional[str]:
  """The .py file `reference`'s module lives in (None if it cannot be found)."""
  module, _ = split_reference(reference)
  if is_file_reference(reference):
    for path in (module, os.path.join(PROJECT_ROOT, module)):
      if os.path.isfile(path):
        return os.path.abspath(path)
    return None
  _on_path(PROJECT_ROOT)
  try:
    spec = importlib.util.find_spec(module)
  except (ImportError, ValueError):
    return None
  return spec.origin if spec and spec.origin and spec.origin.endswith('.py') else None


def _on_path(folder: str) -> None:
  if folder not in sys.path:
    sys.path.append(folder)


def load_builder(reference: str) -> Callable:
  """The function `reference` names; HypermodelError in one line if it cannot be had."""
  module_name, function = split_reference(reference)
  prefix = f'--hypermodel {reference}'
  try:
    if is_file_reference(reference):
      path = module_file(reference)
      if path is None:
        raise HypermodelError(f'{prefix}: no such file {module_name}.')
      _on_path(os.path.dirname(path))  # Its own imports of files beside it.
      name = 'flower_tuner_hypermodel_' + hashlib.sha256(path.encode()).hexdigest()[:12]
      module = sys.modules.get(name)
      if module is None:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
          spec.loader.exec_module(module)
        except BaseException:
          del sys.modules[name]
          raise
    else:
      _on_path(PROJECT_ROOT)
      module = importlib.import_module(module_name)
  except HypermodelError:
    raise
  except Exception as e:  # Whatever importing the user's module raises.
    raise HypermodelError(
      f'{prefix}: cannot import {module_name} ({type(e).__name__}: {_first_line(e)}).'
    ) from None
  builder = getattr(module, function, None)
  if builder is None:
    raise HypermodelError(f'{prefix}: {module_name} has no {function}.')
  if not callable(builder):
    raise HypermodelError(f'{prefix}: {function} is a {type(builder).__name__}, not a function.')
  return builder


def _first_line(error: BaseException) -> str:
  return (str(error).strip().splitlines() or [type(error).__name__])[0][:300]


def _keywords(builder: Callable, num_classes: int, image_size: int) -> dict:
  try:
    parameters = inspect.signature(builder).parameters
  except (TypeError, ValueError):
    return {}
  given = {'num_classes': num_classes, 'image_size': image_size}
  return {name: given[name] for name in BUILDER_KEYWORDS if name in parameters}


def call_builder(reference: str, builder: Callable, hp, num_classes: int, image_size: int):
  """`builder(hp, ...)`; what it raises becomes one line naming it."""
  try:
    return builder(hp, **_keywords(builder, num_classes, image_size))
  except keras_tuner.errors.FatalError:
    raise
  except Exception as e:
    raise HypermodelError(
      f'--hypermodel {reference}: it raised {type(e).__name__}: {_first_line(e)}'
    ) from None


def check_model(reference: str, built, num_classes: int, image_size: int) -> None:
  """Raises HypermodelError unless `built` keeps the contract (see the module's docstring)."""
  prefix = f'--hypermodel {reference}'
  if not isinstance(built, keras.Model):
    raise HypermodelError(f'{prefix}: it returned {type(built).__name__}, not a keras.Model.')
  if getattr(built, 'optimizer', None) is None or not getattr(built, 'compiled', True):
    raise HypermodelError(
      f'{prefix}: the model is not compiled: call '
      "model.compile(optimizer, loss, metrics=['accuracy']) before returning it."
    )
  try:
    metrics = (built.get_compile_config() or {}).get('metrics')
  except Exception:  # A compile config Keras cannot serialize: leave it to keras-tuner.
    metrics = ['accuracy']
  names = [m if isinstance(m, str) else getattr(m, 'name', '') for m in _flatten(metrics)]
  if 'accuracy' not in names:
    raise HypermodelError(
      f"{prefix}: the model is compiled without metrics=['accuracy']: the search maximises "
      f'{search_space.OBJECTIVE}.'
    )
  images = np.zeros((1, image_size, image_size, 3), np.float32)
  try:
    outputs = built(images, training=False)
  except Exception as e:
    raise HypermodelError(
      f'{prefix}: the model does not take [N, {image_size}, {image_size}, 3] images '
      f'({type(e).__name__}: {_first_line(e)}).'
    ) from None
  if isinstance(outputs, (list, tuple, dict)):
    raise HypermodelError(f'{prefix}: the model has several outputs; it needs one, [N, classes].')
  shape = tuple(outputs.shape)
  if shape != (1, num_classes):
    raise HypermodelError(
      f'{prefix}: the model outputs shape [N, {", ".join(str(d) for d in shape[1:])}] but the '
      f"data has {num_classes} classes: end it with Dense({num_classes}, activation='softmax')."
    )
  values = keras.ops.convert_to_numpy(outputs)
  if not (np.all(values >= -1e-6) and np.allclose(values.sum(axis=-1), 1.0, atol=1e-3)):
    raise HypermodelError(
      f"{prefix}: the model's outputs are not probabilities (they do not sum to 1): end it with "
      "activation='softmax'; serving and the Evaluator read probabilities."
    )


def _flatten(metrics) -> Iterable:
  if metrics is None:
    return []
  if isinstance(metrics, dict):
    metrics = list(metrics.values())
  if not isinstance(metrics, (list, tuple)):
    return [metrics]
  out = []
  for m in metrics:
    out += list(_flatten(m)) if isinstance(m, (list, tuple, dict)) else [m]
  return out
