"""The hyperparameter search space: a YAML or JSON file of keras-tuner hyperparameters.

`search_space.yaml` beside this file is the built-in model's space;
`--search-space FILE` replaces it. Each top-level key names a hyperparameter and
declares it with one of keras-tuner's types (README.md, "Search space file"):

  units:          {type: int, min: 64, max: 256, step: 64, default: 128}
  learning_rate:  {type: float, min: 1.0e-4, max: 1.0e-2, sampling: log, default: 1.0e-3}
  optimizer:      {type: choice, values: [sgd, adam], default: adam}
  augment_flip:   {type: boolean, default: false}
  seed_units:     {type: fixed, value: 64}
  momentum:       {type: float, min: 0.0, max: 0.9, default: 0.9,
                   condition: {parent: optimizer, values: [sgd]}}

`load` checks the file and raises `SearchSpaceError`, one line naming the file,
the hyperparameter and the problem. A `Space` is the checked file in a
canonical form (`spec`, JSON-able): the pipeline puts it in the Tuner's and
Trainer's `custom_config` (so their cache keys and the resumable search's key
follow the file's contents, and Vertex AI jobs need no copy of the file), and
`hyperparameters()` turns it into keras-tuner's `HyperParameters`, which the
tuner starts from and `--no-tune` trains with (the defaults).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from modules.module_config import MIN_IMAGE_SIZE, PRETRAINED_BACKBONES
from modules.search import declaration, parsing

# What the search maximises (and the Tuner's early stopping and pruning watch).
OBJECTIVE = 'val_accuracy'
# The contract file stays beside the entry points: modules/search_space.yaml.
DEFAULT_FILE = os.path.join(
  os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'search_space.yaml'
)
# custom_config key of the checked space (`Space.spec`).
CUSTOM_CONFIG_KEY = 'search_space_spec'


class SearchSpaceError(ValueError):
  """A search-space file that cannot be used: one line naming the file, the name and the problem."""


# Hyperparameters the pipeline reads itself, and what their values must be.
# The built-in model reads the first group; every model's input pipeline and
# `HyperModel.fit` read the second (modules/model/hypermodel.py).
_ACTIVATIONS = ('relu', 'tanh', 'sigmoid', 'elu', 'selu', 'gelu', 'swish', 'softplus', 'linear')
OPTIMIZERS = ('sgd', 'adam')
_PositiveInt = ('a whole number of 1 or more', lambda v: declaration.is_int(v) and v >= 1)
_Fraction = (
  'a number from 0 up to (not including) 1',
  lambda v: declaration.is_number(v) and 0 <= v < 1,
)
_Switch = ('true or false', lambda v: isinstance(v, bool))
MODEL_NAMES: Dict[str, Tuple[str, Callable[[Any], bool]]] = {
  'units': _PositiveInt,
  'dense_activation': (f'one of {", ".join(_ACTIVATIONS)}', lambda v: v in _ACTIVATIONS),
  'learning_rate': ('a number above 0', lambda v: declaration.is_number(v) and v > 0),
  'optimizer': (f'one of {", ".join(OPTIMIZERS)}', lambda v: v in OPTIMIZERS),
  'dropout': _Fraction,
  'label_smoothing': _Fraction,
  'momentum': _Fraction,
  'fine_tune_layers': _PositiveInt,
  # A trial's backbone, each at its own image size (modules/model/model.py).
  'backbone': (
    f'one of {", ".join(PRETRAINED_BACKBONES)}',
    lambda v: v in PRETRAINED_BACKBONES,
  ),
  # The size a trial's backbone sees the stored images resized to (modules/model/model.py).
  'image_size': (
    f'a whole number of pixels, {MIN_IMAGE_SIZE} or more',
    lambda v: declaration.is_int(v) and v >= MIN_IMAGE_SIZE,
  ),
}
FIT_NAMES: Dict[str, Tuple[str, Callable[[Any], bool]]] = {
  'batch_size': _PositiveInt,
  'augment_flip': _Switch,
  'augment_rotation': _Switch,
  'augment_zoom': _Switch,
}
# What the built-in model cannot do without: a file that leaves one out has it
# fixed at the built-in space's default.
BUILTIN_REQUIRED = ('units', 'dense_activation', 'learning_rate', 'optimizer')


@dataclasses.dataclass(frozen=True)
class Space:
  """A checked search space: `spec` is one canonical dict per hyperparameter, in file order."""

  spec: Tuple[Mapping[str, Any], ...]
  source: str = ''  # The file it came from, as the user named it ('' for none).

  @property
  def names(self) -> List[str]:
    return [entry['name'] for entry in self.spec]

  def entry(self, name: str) -> Mapping[str, Any]:
    return next(e for e in self.spec if e['name'] == name)

  def to_json(self) -> List[dict]:
    return [dict(e) for e in self.spec]

  def hyperparameters(self):
    """keras-tuner's HyperParameters for the space; values (the active ones) at their defaults."""
    import keras_tuner

    hp = keras_tuner.HyperParameters()
    for entry in self.spec:
      with contextlib.ExitStack() as scopes:
        for parent, values in self.conditions(entry['name']):
          scopes.enter_context(hp.conditional_scope(parent, list(values)))
        declaration.declare(hp, entry)
    return hp

  def conditions(self, name: str) -> List[Tuple[str, Tuple]]:
    """(parent, values) from the outermost condition in: the parent's own, then `name`'s."""
    condition = self.entry(name).get('condition')
    if not condition:
      return []
    return self.conditions(condition['parent']) + [(condition['parent'], condition['values'])]

  def with_defaults_for(self, required: Sequence[str], defaults: 'Space') -> Tuple['Space', list]:
    """This space plus a `fixed` entry at `defaults`' default for each `required` name it lacks."""
    added = []
    for name in required:
      if name not in self.names:
        added.append(
          {'name': name, 'type': 'fixed', 'value': declaration.default_value(defaults.entry(name))}
        )
    return dataclasses.replace(self, spec=self.spec + tuple(added)), [e['name'] for e in added]

  def points(self) -> Optional[int]:
    """An upper bound on its distinct points (conditions not counted); None: no bound counted."""
    counts = [declaration.value_count(entry) for entry in self.spec]
    return None if not counts or None in counts else math.prod(counts)

  def describe(self) -> str:
    return ', '.join(self.names) if self.spec else 'none declared'


# Reading and checking a file ------------------------------------------------


def load(path: Optional[str] = None, shown: Optional[str] = None) -> Space:
  """The checked space in `path` (default: the built-in one); `shown` names it in errors."""
  path = path or DEFAULT_FILE
  shown = shown or path
  prefix = f'--search-space {shown}'
  try:
    with open(path) as f:
      text = f.read()
  except OSError as e:
    raise SearchSpaceError(f'{prefix}: cannot read it ({e.strerror or e}).') from None
  try:
    data = parsing.parse(text, json_file=path.endswith('.json'))
  except parsing.RepeatedKey as e:
    raise SearchSpaceError(f'{prefix}: {e}.') from None
  except ValueError as e:  # json.JSONDecodeError too.
    kind = 'JSON' if path.endswith('.json') else 'YAML'
    detail = str(e) if str(e).startswith('not valid') else f'not valid {kind} ({e})'
    raise SearchSpaceError(f'{prefix}: {detail}.') from None
  return from_mapping(data, shown)


def from_mapping(data: Any, source: str = '') -> Space:
  """The checked space a parsed file describes; SearchSpaceError names `source` and the problem."""
  prefix = f'--search-space {source}' if source else 'search space'
  if data is None:
    data = {}
  if not isinstance(data, dict):
    raise SearchSpaceError(
      f'{prefix}: expected a mapping of hyperparameter names to their declarations, '
      f'not {type(data).__name__}.'
    )
  spec = []
  for name, declared in data.items():
    try:
      spec.append(declaration.check(name, declared, spec))
    except ValueError as e:
      raise SearchSpaceError(f'{prefix}: {name}: {e}.') from None
  return Space(tuple(spec), source)


def check_values(space: Space, names: Mapping[str, Tuple[str, Callable[[Any], bool]]]) -> None:
  """Every value `space` can give each of `names` must be what the pipeline can use."""
  for entry in space.spec:
    if entry['name'] not in names:
      continue
    what, test = names[entry['name']]
    for value in declaration.possible_values(entry):
      if not test(value):
        raise SearchSpaceError(
          f'--search-space {space.source}: {entry["name"]}: {declaration.show(value)} '
          f'cannot be used: it must be {what}.'
        )


# Which space a run searches --------------------------------------------------


def builtin() -> Space:
  return load(DEFAULT_FILE, 'modules/search_space.yaml')


def backbone_choices(space: Space) -> List[str]:
  """The backbones a space searches among (its `backbone` values); [] where it has none."""
  return declaration.possible_values(space.entry('backbone')) if 'backbone' in space.names else []


def image_sizes(space: Space) -> List[int]:
  """The image sizes a space searches (every `image_size` value); [] where it has none."""
  return declaration.every_value(space.entry('image_size')) if 'image_size' in space.names else []


def declared_values(config, name: str) -> list:
  """What the space file of `config` (a ModuleConfig) may give `name` (a range's ends), unchecked.

  A quick read of the file alone, for the runners to size images by before the
  console is set up (checking it imports keras-tuner, and TensorFlow with it);
  the full check comes later and reports any problem with the file.
  """
  if config.hypermodel and not config.search_space:
    return []
  try:
    with open(config.search_space or DEFAULT_FILE) as f:
      data = parsing.parse(f.read(), json_file=(config.search_space or '').endswith('.json'))
    return declaration.possible_values(data[name])
  except (OSError, ValueError, KeyError, TypeError, AttributeError):
    return []


def for_module(config) -> Tuple[Space, List[str]]:
  """The space `config` (a ModuleConfig) searches, and the names fixed at built-in defaults.

  `--search-space FILE`, else the built-in file for the built-in model, else
  none (a user's `model_builder` declares its own, as in keras-tuner). A file
  for the built-in model that leaves out one of BUILTIN_REQUIRED gets it fixed
  at the built-in default; the values of the names the pipeline reads are checked.
  """
  if config.search_space:
    space = load(config.search_space)
  elif config.hypermodel:
    space = Space(())
  else:
    space = builtin()
  fixed: List[str] = []
  if not config.hypermodel:
    space, fixed = space.with_defaults_for(BUILTIN_REQUIRED, builtin())
    check_values(space, MODEL_NAMES)
  check_values(space, FIT_NAMES)
  return space, fixed


def from_spec(spec: Sequence[Mapping[str, Any]], source: str = '') -> Space:
  return Space(tuple(_from_json(e) for e in spec), source)


def _from_json(entry: Mapping[str, Any]) -> Mapping[str, Any]:
  entry = dict(entry)
  if entry.get('condition'):
    entry['condition'] = {**entry['condition'], 'values': tuple(entry['condition']['values'])}
  return entry


def from_custom_config(custom_config: Optional[Mapping[str, Any]]) -> Space:
  """The space the pipeline put in `custom_config`, or (without one) the one its options name."""
  from modules.module_config import ModuleConfig

  custom_config = custom_config or {}
  if CUSTOM_CONFIG_KEY in custom_config:
    return from_spec(custom_config[CUSTOM_CONFIG_KEY])
  return for_module(ModuleConfig.from_custom_config(custom_config))[0]


def spec_json(space: Space) -> List[dict]:
  """`space.spec` as plain JSON (tuples as lists): what custom_config and the search key hold."""
  return json.loads(json.dumps(space.to_json()))


def defaults() -> 'object':
  """The built-in space with every value at its default (keras-tuner HyperParameters)."""
  return builtin().hyperparameters()


def public_values(values: dict) -> dict:
  """Hyperparameter values (`hp.values`) without keras-tuner's bookkeeping (tuner/epochs, ...)."""
  return {k: v for k, v in values.items() if not k.startswith('tuner/')}
