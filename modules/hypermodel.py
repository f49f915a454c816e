"""The hypermodel the Tuner searches and the Trainer trains: the built-in classifier, or yours.

`FlowerHyperModel` is a keras-tuner `HyperModel`. Its `build` makes the
built-in model (modules/model.py: a head alone on cached backbone features,
else backbone + head), or calls the user's `--hypermodel MODULE:FUNCTION`.
Its `fit` reads what the input pipeline takes from the search space, so every
trial trains with its own `batch_size` and augmentation switches (on cached
features too), then calls `model.fit`.

The `--hypermodel` contract: `FUNCTION(hp)` returns a compiled `keras.Model`
that takes `[N, size, size, 3]` float images in [0, 1] (size: --image-size)
and returns `[N, classes]` probabilities (a softmax), compiled with
`metrics=['accuracy']` (the search maximises `val_accuracy`). Labels are
integer class ids (a sparse loss). If the function also takes `num_classes`
or `image_size` arguments, it gets the data's class count and --image-size.
A builder that breaks the contract fails the first build with one line
naming the function and the problem (`HypermodelError`, a keras-tuner
`FatalError`, so the search stops there instead of retrying).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import importlib.util
import inspect
import os
import sys
from typing import Callable, Iterable, List, Optional, Set

import keras
import keras_tuner
import numpy as np

from modules import model, search_space
from modules.augmentation import Augmentation
from modules.module_config import ModuleConfig
from modules.search_space import SearchSpaceError, Space

# The checkout's root: relative module paths are found from there too (the
# Vertex AI image keeps the same layout under /pipeline).
PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Keyword arguments a builder may take beside `hp`, filled from the data and options.
BUILDER_KEYWORDS = ('num_classes', 'image_size')


class HypermodelError(keras_tuner.errors.FatalError, ValueError):
  """A `--hypermodel` that cannot be loaded or breaks the contract: one line saying why."""


# Loading the user's function -------------------------------------------------


def split_reference(reference: str):
  """('examples.flower_builder', 'model_builder') from 'examples.flower_builder:model_builder'."""
  module, _, function = reference.rpartition(':')
  return module, function


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


# What the input pipeline reads from the space ---------------------------------


@dataclasses.dataclass(frozen=True)
class FitSettings:
  batch_size: int
  augment: Augmentation


def fit_settings(hp, config: ModuleConfig) -> FitSettings:
  """The trial's batch size (else --batch-size) and augmentation switches (else off)."""
  return FitSettings(
    batch_size=int(model.optional(hp, 'batch_size', config.batch_size)),
    augment=Augmentation(
      flip=bool(model.optional(hp, 'augment_flip', False)),
      rotation=bool(model.optional(hp, 'augment_rotation', False)),
      zoom=bool(model.optional(hp, 'augment_zoom', False)),
    ),
  )


class FlowerHyperModel(keras_tuner.HyperModel):
  """The built-in model or the user's builder, fitted on `data` with each trial's fit settings."""

  def __init__(self, config: ModuleConfig, data, num_classes: int):
    super().__init__(name='flower_classifier')
    self.config = config
    self.data = data  # A modules.training_data.TrainingData.
    self.num_classes = num_classes
    self.builder = load_builder(config.hypermodel) if config.hypermodel else None

  def build(self, hp):
    if self.data.cached_features:
      return model.build_head(hp, self.num_classes, self.data.feature_dim)
    if self.builder is None:
      return model.build_model(hp, self.config, self.num_classes)
    reference, size = self.config.hypermodel, self.config.image_size
    built = call_builder(reference, self.builder, hp, self.num_classes, size)
    check_model(reference, built, self.num_classes, size)
    return built

  def fit(self, hp, model_to_fit, *args, **kwargs):
    """`model.fit` on the batches of this trial's batch size and augmentation.

    Training and validation data come from `data`; `x` / `validation_data`
    given here are ignored. `steps_per_epoch` given here wins (fixed budgets).
    """
    settings = fit_settings(hp, self.config)
    for key in ('x', 'y', 'validation_data', 'batch_size'):
      kwargs.pop(key, None)
    steps = kwargs.pop('steps_per_epoch', None) or self.data.steps_per_epoch(settings.batch_size)
    return model_to_fit.fit(
      self.data.train(settings.batch_size, settings.augment),
      validation_data=self.data.eval(settings.batch_size),
      steps_per_epoch=steps,
      **kwargs,
    )


# Checking a space against the model, before any component runs ----------------


class _Reading(keras_tuner.HyperParameters):
  """HyperParameters that note every name the model reads (hp.get, hp['x'], hp.Int(...), ...)."""

  def __init__(self):
    super().__init__()
    self.read: Set[str] = set()

  def get(self, name):
    self.read.add(name)
    return super().get(name)

  def _retrieve(self, hp):
    self.read.add(hp.name)
    return super()._retrieve(hp)


def _active(space: Space, values: dict) -> dict:
  """`values` with inactive names dropped and newly active ones at their defaults."""
  out = {}
  for entry in space.spec:
    name = entry['name']
    condition = entry.get('condition')
    if condition and out.get(condition['parent'], object()) not in condition['values']:
      continue
    out[name] = values.get(name, search_space.default_value(entry))
  return out


def _assignments(space: Space, base: dict) -> Iterable[dict]:
  """Values that make each conditional name active in turn (its parents at their first value)."""
  for name in space.names:
    values = dict(base)
    for parent, allowed in space.conditions(name):
      values[parent] = allowed[0]
    yield _active(space, values)


def _sweep(space: Space, base: dict) -> Iterable[dict]:
  """One value changed at a time: every choice and boolean value, int ends."""
  for entry in space.spec:
    if entry['type'] in ('choice', 'boolean'):
      others = search_space.possible_values(entry)
    elif entry['type'] == 'int':
      others = [entry['min'], entry['max']]
    else:
      continue
    for value in others:
      if value != base.get(entry['name']):
        yield _active(space, {**base, entry['name']: value})


def names_read(space: Space, config: ModuleConfig, until: Optional[Set[str]] = None) -> Set[str]:
  """The names of `space` the model and the input pipeline read, over enough builds to tell.

  Builds at the defaults, then with each condition met; if some name is still
  unread, with one choice, boolean or int end changed at a time, until every
  name of `until` was read. The built-in model's head is built on made-up
  features (no backbone is loaded); a user's builder is called as in a trial.
  """
  until = set(space.names) if until is None else until
  builder = load_builder(config.hypermodel) if config.hypermodel else None
  config_hp = space.hyperparameters().get_config()
  base = _active(space, {})
  read: Set[str] = set()
  seen: List[dict] = []

  def build(values: dict) -> None:
    if values in seen:
      return
    seen.append(values)
    hp = _Reading.from_config(config_hp)
    hp.values = dict(values)
    if builder is None:
      model.build_head(hp, num_classes=2, feature_dim=8)
      model.fine_tune_layers(hp, config)
    else:
      call_builder(config.hypermodel, builder, hp, 2, config.image_size)
    fit_settings(hp, config)
    read.update(hp.read)

  for values in [base, *_assignments(space, base)]:
    build(values)
  for values in _sweep(space, base):
    if until <= read:
      break
    build(values)
  keras.backend.clear_session()
  return read


def check_space(space: Space, config: ModuleConfig) -> None:
  """SearchSpaceError for a name in `space` that neither the model nor the input pipeline reads."""
  if not space.spec:
    return
  read = names_read(space, config)
  for name in space.names:
    if name in read:
      continue
    if config.hypermodel:
      who = f'{config.hypermodel} does not read it'
      if read - set(search_space.FIT_NAMES):
        who += f' (it reads {", ".join(sorted(read - set(search_space.FIT_NAMES)))})'
    elif name == 'fine_tune_layers':
      who = 'the built-in model reads it only with --fine-tune on a SavedModel backbone'
    else:
      who = (
        'the built-in model does not read it (it reads '
        f'{", ".join(n for n in search_space.MODEL_NAMES if n != "fine_tune_layers")}, '
        'and fine_tune_layers with --fine-tune)'
      )
    fit = ', '.join(search_space.FIT_NAMES)
    raise SearchSpaceError(
      f'--search-space {space.source}: {name}: {who}; the input pipeline reads {fit}.'
    )
