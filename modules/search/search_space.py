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
import re
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

# What the search maximises (and the Tuner's early stopping and pruning watch).
OBJECTIVE = 'val_accuracy'
# The contract file stays beside the entry points: modules/search_space.yaml.
DEFAULT_FILE = os.path.join(
  os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'search_space.yaml'
)
# custom_config key of the checked space (`Space.spec`).
CUSTOM_CONFIG_KEY = 'search_space_spec'

TYPES = ('int', 'float', 'choice', 'boolean', 'fixed')
SAMPLINGS = ('linear', 'log', 'reverse_log')
# Keys each type takes, required ones first; every type also takes `condition`.
_KEYS = {
  'int': (('min', 'max', 'default'), ('step', 'sampling')),
  'float': (('min', 'max', 'default'), ('step', 'sampling')),
  'choice': (('values', 'default'), ('ordered',)),
  'boolean': (('default',), ()),
  'fixed': (('value',), ()),
}
CONDITION_KEYS = ('parent', 'values')


class SearchSpaceError(ValueError):
  """A search-space file that cannot be used: one line naming the file, the name and the problem."""


def _is_int(value) -> bool:
  return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
  return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)


def _is_scalar(value) -> bool:
  return isinstance(value, (bool, str)) or _is_number(value)


def _show(value) -> str:
  return json.dumps(value) if isinstance(value, str) else repr(value)


# Hyperparameters the pipeline reads itself, and what their values must be.
# The built-in model reads the first group; every model's input pipeline and
# `HyperModel.fit` read the second (modules/model/hypermodel.py).
_ACTIVATIONS = ('relu', 'tanh', 'sigmoid', 'elu', 'selu', 'gelu', 'swish', 'softplus', 'linear')
OPTIMIZERS = ('sgd', 'adam')
_PositiveInt = ('a whole number of 1 or more', lambda v: _is_int(v) and v >= 1)
_Fraction = ('a number from 0 up to (not including) 1', lambda v: _is_number(v) and 0 <= v < 1)
_Switch = ('true or false', lambda v: isinstance(v, bool))
MODEL_NAMES: Dict[str, Tuple[str, Callable[[Any], bool]]] = {
  'units': _PositiveInt,
  'dense_activation': (f'one of {", ".join(_ACTIVATIONS)}', lambda v: v in _ACTIVATIONS),
  'learning_rate': ('a number above 0', lambda v: _is_number(v) and v > 0),
  'optimizer': (f'one of {", ".join(OPTIMIZERS)}', lambda v: v in OPTIMIZERS),
  'dropout': _Fraction,
  'label_smoothing': _Fraction,
  'momentum': _Fraction,
  'fine_tune_layers': _PositiveInt,
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
        _declare(hp, entry)
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
        added.append({'name': name, 'type': 'fixed', 'value': default_value(defaults.entry(name))})
    return dataclasses.replace(self, spec=self.spec + tuple(added)), [e['name'] for e in added]

  def describe(self) -> str:
    return ', '.join(self.names) if self.spec else 'none declared'


def default_value(entry: Mapping[str, Any]):
  return entry['value'] if entry['type'] == 'fixed' else entry['default']


def possible_values(entry: Mapping[str, Any]) -> list:
  """What an entry can take: every choice, both booleans, the fixed value, or int/float ends."""
  kind = entry['type']
  if kind == 'choice':
    return list(entry['values'])
  if kind == 'boolean':
    return [False, True]
  if kind == 'fixed':
    return [entry['value']]
  return [entry['min'], entry['max'], entry['default']]


def _range_keywords(entry: Mapping[str, Any]) -> dict:
  return {key: entry[key] for key in ('step', 'sampling', 'default')}


def _declare(hp, entry: Mapping[str, Any]) -> None:
  name, kind = entry['name'], entry['type']
  if kind == 'int':
    hp.Int(name, entry['min'], entry['max'], **_range_keywords(entry))
  elif kind == 'float':
    hp.Float(name, entry['min'], entry['max'], **_range_keywords(entry))
  elif kind == 'choice':
    hp.Choice(name, list(entry['values']), ordered=entry['ordered'], default=entry['default'])
  elif kind == 'boolean':
    hp.Boolean(name, default=entry['default'])
  else:
    hp.Fixed(name, entry['value'])


# Reading and checking a file ------------------------------------------------


def _yaml_loader():
  import yaml

  class Loader(yaml.SafeLoader):
    """PyYAML's safe loader, reading 1e-3 as a float (as JSON does) and refusing repeated keys."""

  Loader.add_implicit_resolver(
    'tag:yaml.org,2002:float',
    re.compile(r'^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$'),
    list('-+0123456789'),
  )

  def mapping(loader, node):
    seen = set()
    for key_node, _ in node.value:
      key = loader.construct_object(key_node)
      if key in seen:
        raise SearchSpaceError(f'{key}: declared twice (line {key_node.start_mark.line + 1})')
      seen.add(key)
    return loader.construct_mapping(node)

  Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
  return Loader


def _parse_text(text: str, json_file: bool):
  if json_file:

    def no_duplicates(pairs):
      keys = [k for k, _ in pairs]
      for key in keys:
        if keys.count(key) > 1:
          raise SearchSpaceError(f'{key}: declared twice')
      return dict(pairs)

    return json.loads(text, object_pairs_hook=no_duplicates)
  import yaml

  try:
    return yaml.load(text, Loader=_yaml_loader())  # noqa: S506 (a SafeLoader subclass)
  except yaml.YAMLError as e:
    mark = getattr(e, 'problem_mark', None)
    where = f' at line {mark.line + 1}' if mark else ''
    problem = getattr(e, 'problem', None) or str(e).splitlines()[0]
    raise ValueError(f'not valid YAML{where} ({problem})') from None


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
    data = _parse_text(text, path.endswith('.json'))
  except SearchSpaceError as e:
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
  for name, declaration in data.items():
    try:
      spec.append(_check_entry(name, declaration, spec))
    except ValueError as e:
      raise SearchSpaceError(f'{prefix}: {name}: {e}.') from None
  return Space(tuple(spec), source)


def _check_entry(name, declaration, earlier: List[dict]) -> dict:
  if not isinstance(name, str) or not name or name.startswith('tuner/'):
    raise ValueError('names must be non-empty text, not starting with tuner/')
  if not isinstance(declaration, dict):
    raise ValueError(
      'expected a mapping with a type (int, float, choice, boolean or fixed), '
      f'not {_show(declaration)}'
    )
  kind = declaration.get('type')
  if kind not in TYPES:
    raise ValueError(
      f'type {_show(kind)} is not one of {", ".join(TYPES)}'
      if 'type' in declaration
      else f'missing type ({", ".join(TYPES)})'
    )
  required, optional = _KEYS[kind]
  allowed = ('type', *required, *optional, 'condition')
  for key in declaration:
    if key not in allowed:
      raise ValueError(f'unknown key {_show(key)} ({kind} takes {", ".join(allowed[1:])})')
  for key in required:
    if key not in declaration:
      raise ValueError(f'missing {key} ({kind} takes {", ".join(allowed[1:])})')
  entry = {'name': name, 'type': kind}
  entry.update(_CHECKS[kind](declaration))
  if 'condition' in declaration:
    entry['condition'] = _check_condition(declaration['condition'], earlier)
  _check_with_keras_tuner(entry)
  return entry


def _range(declaration: dict, integer: bool) -> dict:
  kind, test = ('a whole number', _is_int) if integer else ('a number', _is_number)
  for key in ('min', 'max', 'default', 'step'):
    value = declaration.get(key)
    if value is not None and not test(value):
      raise ValueError(f'{key} must be {kind}, not {_show(value)}')
  low, high, default = declaration['min'], declaration['max'], declaration['default']
  step, sampling = declaration.get('step'), declaration.get('sampling', 'linear')
  if low > high:
    raise ValueError(f'min {low} is greater than max {high}')
  if sampling not in SAMPLINGS:
    raise ValueError(f'sampling {_show(sampling)} is not one of {", ".join(SAMPLINGS)}')
  if sampling != 'linear' and low <= 0:
    raise ValueError(f'{sampling} sampling needs a min above 0, not {low}')
  if step is not None and step <= 0:
    raise ValueError(f'step must be above 0, not {step}')
  if step is not None and sampling != 'linear' and step <= 1:
    raise ValueError(f'with {sampling} sampling, step multiplies: it must be above 1, not {step}')
  if not low <= default <= high:
    raise ValueError(f'default {default} is outside min {low} .. max {high}')
  if step is not None and not _on_grid(default, low, step, sampling):
    grid = f'{low} * {step}^k' if sampling != 'linear' else f'{low} + k * {step}'
    raise ValueError(f'default {default} is not one of the values {grid}')
  if not integer:
    low, high, default = float(low), float(high), float(default)
    step = None if step is None else float(step)
  return {'min': low, 'max': high, 'step': step, 'sampling': sampling, 'default': default}


def _on_grid(value, low, step, sampling) -> bool:
  if sampling == 'linear':
    k = (value - low) / step
  else:
    k = math.log(value / low) / math.log(step)
  return abs(k - round(k)) < 1e-6


def _check_choice(declaration: dict) -> dict:
  values = declaration['values']
  if not isinstance(values, list) or not values:
    raise ValueError(f'values must be a non-empty list, not {_show(values)}')
  for value in values:
    if not _is_scalar(value):
      raise ValueError(f'values must be numbers, text or true/false, not {_show(value)}')
  kinds = {bool if isinstance(v, bool) else str if isinstance(v, str) else 'number' for v in values}
  if len(kinds) > 1:
    raise ValueError(
      f'values mix kinds ({_show(values)}): use all numbers, all text or all true/false'
    )
  default = declaration['default']
  if any(isinstance(v, float) for v in values):
    # keras-tuner wants one type: with 0.5 among them, 1 is 1.0.
    values = [float(v) for v in values]
    default = float(default) if _is_int(default) else default
  if len(set(values)) < len(values):
    raise ValueError(f'values list one value twice ({_show(values)})')
  if not any(default == v and type(default) is type(v) for v in values):
    raise ValueError(f'default {_show(default)} is not one of the values {_show(values)}')
  ordered = declaration.get('ordered')
  if ordered is not None and not isinstance(ordered, bool):
    raise ValueError(f'ordered must be true or false, not {_show(ordered)}')
  if ordered and kinds != {'number'}:
    raise ValueError('ordered: true needs numeric values')
  return {'values': values, 'ordered': ordered, 'default': default}


def _check_boolean(declaration: dict) -> dict:
  if not isinstance(declaration['default'], bool):
    raise ValueError(f'default must be true or false, not {_show(declaration["default"])}')
  return {'default': declaration['default']}


def _check_fixed(declaration: dict) -> dict:
  if not _is_scalar(declaration['value']):
    raise ValueError(
      f'value must be a number, text or true/false, not {_show(declaration["value"])}'
    )
  return {'value': declaration['value']}


_CHECKS = {
  'int': lambda d: _range(d, integer=True),
  'float': lambda d: _range(d, integer=False),
  'choice': _check_choice,
  'boolean': _check_boolean,
  'fixed': _check_fixed,
}


def _check_condition(condition, earlier: List[dict]) -> dict:
  if not isinstance(condition, dict):
    raise ValueError(f'condition must be a mapping with parent and values, not {_show(condition)}')
  for key in condition:
    if key not in CONDITION_KEYS:
      raise ValueError(f'unknown key {_show(key)} in condition (it takes parent, values)')
  for key in CONDITION_KEYS:
    if key not in condition:
      raise ValueError(f'condition is missing {key}')
  parent, values = condition['parent'], condition['values']
  parents = {e['name']: e for e in earlier}
  if parent not in parents:
    raise ValueError(f'condition parent {_show(parent)} is not declared above it')
  if parents[parent]['type'] == 'float':
    raise ValueError(f'condition parent {parent} is a float: use a choice, int, boolean or fixed')
  if not isinstance(values, list) or not values:
    raise ValueError(f'condition values must be a non-empty list, not {_show(values)}')
  for value in values:
    if not _can_take(parents[parent], value):
      raise ValueError(f'condition value {_show(value)} is not a value {parent} can take')
  return {'parent': parent, 'values': tuple(values)}


def _can_take(entry: dict, value) -> bool:
  kind = entry['type']
  if kind == 'choice':
    return any(value == v and type(value) is type(v) for v in entry['values'])
  if kind == 'boolean':
    return isinstance(value, bool)
  if kind == 'fixed':
    return value == entry['value'] and type(value) is type(entry['value'])
  return (
    _is_int(value)
    and entry['min'] <= value <= entry['max']
    and (entry['step'] is None or _on_grid(value, entry['min'], entry['step'], entry['sampling']))
  )


def _check_with_keras_tuner(entry: dict) -> None:
  """What keras-tuner itself rejects, in its words (the checks above should catch it first)."""
  import keras_tuner

  hp = keras_tuner.HyperParameters()
  try:
    _declare(hp, entry)
  except (ValueError, TypeError) as e:
    raise ValueError(f'keras-tuner rejects it ({str(e).strip().splitlines()[0]})') from None


def check_values(space: Space, names: Mapping[str, Tuple[str, Callable[[Any], bool]]]) -> None:
  """Every value `space` can give each of `names` must be what the pipeline can use."""
  for entry in space.spec:
    if entry['name'] not in names:
      continue
    what, test = names[entry['name']]
    for value in possible_values(entry):
      if not test(value):
        raise SearchSpaceError(
          f'--search-space {space.source}: {entry["name"]}: {_show(value)} cannot be used: '
          f'it must be {what}.'
        )


# Which space a run searches --------------------------------------------------


def builtin() -> Space:
  return load(DEFAULT_FILE, 'modules/search_space.yaml')


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
