"""Whether an earlier trial's hyperparameter values are a point of a search space (--warm-start).

A trial fits a space when every hyperparameter the space makes active for
those values has one, and the space's declaration allows it: a choice among
its values, a number in its range and on its step (a log range's step
multiplies, as keras-tuner's does), a fixed value equal to the space's. Its
values must all be names the space declares; a value whose hyperparameter the
space's conditions leave inactive is dropped, as keras-tuner drops inactive
values from a trial of its own.

`fit` returns the values as the space's trial would hold them, or the reason
they do not fit (`learning_rate 0.1 > max 0.01`).
"""

from __future__ import annotations

import math
from typing import Any, Dict, Optional, Tuple, Union

from keras_tuner.src.engine import hyperparameters as hp_module

# Equal within this, relative: values that went through JSON and decimal steps.
_TOLERANCE = 1e-9


def show(value: Any) -> str:
  if isinstance(value, bool):
    return str(value).lower()
  if isinstance(value, float):
    return f'{value:g}'
  return str(value)


def _close(a: float, b: float) -> bool:
  return math.isclose(a, b, rel_tol=_TOLERANCE, abs_tol=_TOLERANCE)


def _is_number(value) -> bool:
  return isinstance(value, (int, float)) and not isinstance(value, bool)


def _same(a, b) -> bool:
  # True == 1 in Python: a boolean must meet a boolean, a number a number.
  if isinstance(a, bool) != isinstance(b, bool):
    return False
  return _close(a, b) if _is_number(a) and _is_number(b) else a == b


def _choice_misfit(hp, value) -> Optional[str]:
  if any(_same(v, value) for v in hp.values):
    return None
  return f'{hp.name} {show(value)} not in [{", ".join(map(show, hp.values))}]'


def _range_misfit(hp, value) -> Optional[str]:
  integer = isinstance(hp, hp_module.Int)
  if not _is_number(value) or (integer and not float(value).is_integer()):
    return f'{hp.name} {show(value)} is not {"a whole number" if integer else "a number"}'
  low, high = hp.min_value, hp.max_value
  if value < low and not _close(value, low):
    return f'{hp.name} {show(value)} < min {show(low)}'
  if value > high and not _close(value, high):
    return f'{hp.name} {show(value)} > max {show(high)}'
  if hp.step is None:
    return None
  if hp.sampling != 'linear':  # The step multiplies: 2, 4, 8, ...
    grid = [hp._get_value_by_index(i) for i in range(hp._get_n_values())]
    on_grid = any(_close(value, point) for point in grid)
    return None if on_grid else f'{hp.name} {show(value)} not in [{", ".join(map(show, grid))}]'
  steps = (value - low) / hp.step
  if _close(steps, round(steps)):
    return None
  return f'{hp.name} {show(value)} off its step {show(hp.step)} from {show(low)}'


def misfit(hp, value) -> Optional[str]:
  """Why `hp`'s declaration does not allow `value` (None: it does)."""
  if isinstance(hp, hp_module.Fixed):
    return None if _same(hp.value, value) else f'{hp.name} {show(value)} != fixed {show(hp.value)}'
  if isinstance(hp, hp_module.Boolean):
    return None if isinstance(value, bool) else f'{hp.name} {show(value)} is not true or false'
  if isinstance(hp, hp_module.Choice):
    return _choice_misfit(hp, value)
  return _range_misfit(hp, value)


def fit(values: Dict[str, Any], space) -> Tuple[Union[Dict[str, Any], None], Optional[str]]:
  """(the values `space` keeps, None) where `values` fit `space`; (None, why) where they do not.

  `space` is keras-tuner's HyperParameters; `values` a trial's public values.
  """
  declared = {hp.name for hp in space.space}
  for name in values:
    if name not in declared:
      return None, f'{name} is not in the new space'
  hps = hp_module.HyperParameters()
  hps.values = dict(values)
  kept = {}
  for hp in space.space:
    if not hps.is_active(hp):  # Its conditions exclude it for these values.
      continue
    if hp.name not in values:
      return None, f'{hp.name} was not searched'
    why = misfit(hp, values[hp.name])
    if why:
      return None, why
    kept[hp.name] = values[hp.name]
  return kept, None
