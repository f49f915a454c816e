"""One hyperparameter of a search-space file: its checks, its canonical entry, its declaration.

`check` takes one declaration as the file writes it (modules/search/search_space.py
reads the file) and returns the canonical entry or raises ValueError saying what
is wrong with it; `declare` declares a checked entry on keras-tuner's
HyperParameters.
"""

from __future__ import annotations

import json
import math
from typing import Any, List, Mapping, Optional

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


def is_int(value) -> bool:
  return isinstance(value, int) and not isinstance(value, bool)


def is_number(value) -> bool:
  return (is_int(value) or isinstance(value, float)) and math.isfinite(value)


def is_scalar(value) -> bool:
  return isinstance(value, (bool, str)) or is_number(value)


def show(value) -> str:
  return json.dumps(value) if isinstance(value, str) else repr(value)


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


def every_value(entry: Mapping[str, Any]) -> list:
  """`possible_values`, but every value of a linear int range: min, min + step, ... up to max."""
  if entry['type'] == 'int' and entry.get('sampling', 'linear') == 'linear':
    return list(range(entry['min'], entry['max'] + 1, entry.get('step') or 1))
  return possible_values(entry)


def value_count(entry: Mapping[str, Any]) -> Optional[int]:
  """How many values keras-tuner can draw for an entry; None where it is not counted here.

  A linear range's step adds (an int's is 1 by default); a log range's step
  multiplies; a range without one (a float's, or a log int's) is not counted.
  """
  kind = entry['type']
  if kind not in ('int', 'float'):
    return len(possible_values(entry))
  step, low, high = entry.get('step'), entry['min'], entry['max']
  if entry.get('sampling', 'linear') != 'linear':
    return None if step is None else math.floor(math.log(high / low) / math.log(step) + 1e-9) + 1
  step = step or (1 if kind == 'int' else None)
  return None if step is None else math.floor((high - low) / step + 1e-9) + 1


def _range_keywords(entry: Mapping[str, Any]) -> dict:
  return {key: entry[key] for key in ('step', 'sampling', 'default')}


def declare(hp, entry: Mapping[str, Any]) -> None:
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


def check(name, declaration, earlier: List[dict]) -> dict:
  if not isinstance(name, str) or not name or name.startswith('tuner/'):
    raise ValueError('names must be non-empty text, not starting with tuner/')
  if not isinstance(declaration, dict):
    raise ValueError(
      'expected a mapping with a type (int, float, choice, boolean or fixed), '
      f'not {show(declaration)}'
    )
  kind = declaration.get('type')
  if kind not in TYPES:
    raise ValueError(
      f'type {show(kind)} is not one of {", ".join(TYPES)}'
      if 'type' in declaration
      else f'missing type ({", ".join(TYPES)})'
    )
  required, optional = _KEYS[kind]
  allowed = ('type', *required, *optional, 'condition')
  takes = f'({kind} takes {", ".join(allowed[1:])})'
  _check_keys(declaration, allowed, required, f'unknown key {{}} {takes}', f'missing {{}} {takes}')
  entry = {'name': name, 'type': kind}
  entry.update(_CHECKS[kind](declaration))
  if 'condition' in declaration:
    entry['condition'] = _check_condition(declaration['condition'], earlier)
  _check_with_keras_tuner(entry)
  return entry


def _range(declaration: dict, integer: bool) -> dict:
  kind, test = ('a whole number', is_int) if integer else ('a number', is_number)
  for key in ('min', 'max', 'default', 'step'):
    value = declaration.get(key)
    if value is not None and not test(value):
      raise ValueError(f'{key} must be {kind}, not {show(value)}')
  low, high, default = declaration['min'], declaration['max'], declaration['default']
  step, sampling = declaration.get('step'), declaration.get('sampling', 'linear')
  if low > high:
    raise ValueError(f'min {low} is greater than max {high}')
  if sampling not in SAMPLINGS:
    raise ValueError(f'sampling {show(sampling)} is not one of {", ".join(SAMPLINGS)}')
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
    raise ValueError(f'values must be a non-empty list, not {show(values)}')
  for value in values:
    if not is_scalar(value):
      raise ValueError(f'values must be numbers, text or true/false, not {show(value)}')
  kinds = {bool if isinstance(v, bool) else str if isinstance(v, str) else 'number' for v in values}
  if len(kinds) > 1:
    raise ValueError(
      f'values mix kinds ({show(values)}): use all numbers, all text or all true/false'
    )
  default = declaration['default']
  if any(isinstance(v, float) for v in values):
    # keras-tuner wants one type: with 0.5 among them, 1 is 1.0.
    values = [float(v) for v in values]
    default = float(default) if is_int(default) else default
  if len(set(values)) < len(values):
    raise ValueError(f'values list one value twice ({show(values)})')
  if not any(default == v and type(default) is type(v) for v in values):
    raise ValueError(f'default {show(default)} is not one of the values {show(values)}')
  ordered = declaration.get('ordered')
  if ordered is not None and not isinstance(ordered, bool):
    raise ValueError(f'ordered must be true or false, not {show(ordered)}')
  if ordered and kinds != {'number'}:
    raise ValueError('ordered: true needs numeric values')
  return {'values': values, 'ordered': ordered, 'default': default}


def _check_boolean(declaration: dict) -> dict:
  if not isinstance(declaration['default'], bool):
    raise ValueError(f'default must be true or false, not {show(declaration["default"])}')
  return {'default': declaration['default']}


def _check_fixed(declaration: dict) -> dict:
  if not is_scalar(declaration['value']):
    raise ValueError(
      f'value must be a number, text or true/false, not {show(declaration["value"])}'
    )
  return {'value': declaration['value']}


_CHECKS = {
  'int': lambda d: _range(d, integer=True),
  'float': lambda d: _range(d, integer=False),
  'choice': _check_choice,
  'boolean': _check_boolean,
  'fixed': _check_fixed,
}


def _check_keys(mapping: dict, allowed, required, unknown: str, missing: str) -> None:
  """Raises ValueError for the first key not `allowed` or `required` key absent (messages: {})."""
  for key in mapping:
    if key not in allowed:
      raise ValueError(unknown.format(show(key)))
  for key in required:
    if key not in mapping:
      raise ValueError(missing.format(key))


def _check_condition(condition, earlier: List[dict]) -> dict:
  if not isinstance(condition, dict):
    raise ValueError(f'condition must be a mapping with parent and values, not {show(condition)}')
  _check_keys(
    condition,
    CONDITION_KEYS,
    CONDITION_KEYS,
    'unknown key {} in condition (it takes parent, values)',
    'condition is missing {}',
  )
  parent, values = condition['parent'], condition['values']
  parents = {e['name']: e for e in earlier}
  if parent not in parents:
    raise ValueError(f'condition parent {show(parent)} is not declared above it')
  if parents[parent]['type'] == 'float':
    raise ValueError(f'condition parent {parent} is a float: use a choice, int, boolean or fixed')
  if not isinstance(values, list) or not values:
    raise ValueError(f'condition values must be a non-empty list, not {show(values)}')
  for value in values:
    if not _can_take(parents[parent], value):
      raise ValueError(f'condition value {show(value)} is not a value {parent} can take')
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
    is_int(value)
    and entry['min'] <= value <= entry['max']
    and (entry['step'] is None or _on_grid(value, entry['min'], entry['step'], entry['sampling']))
  )


def _check_with_keras_tuner(entry: dict) -> None:
  """What keras-tuner itself rejects, in its words (the checks above should catch it first)."""
  import keras_tuner

  hp = keras_tuner.HyperParameters()
  try:
    declare(hp, entry)
  except (ValueError, TypeError) as e:
    raise ValueError(f'keras-tuner rejects it ({str(e).strip().splitlines()[0]})') from None
