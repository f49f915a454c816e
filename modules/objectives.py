"""The objectives a search may score trials on, and the checks of --objectives and its limits.

Part of the options' contract: ModuleConfig checks its fields with `check`, and
the Pareto front (modules/tuning/pareto.py) ranks trials by these names. Kept
apart from the front so that Transform's code fingerprint, which covers
module_config.py and what it imports, does not change with the front's code.
"""

from __future__ import annotations

from typing import Mapping, Optional, Tuple

ACCURACY = 'val_accuracy'
LATENCY = 'latency_ms'
SIZE = 'model_mb'
DIRECTIONS = {ACCURACY: 'max', LATENCY: 'min', SIZE: 'min'}
UNITS = {LATENCY: 'ms', SIZE: 'MB'}
# The flag that limits each minimised objective, and the ModuleConfig field behind it.
LIMIT_FLAGS = {LATENCY: '--max-latency-ms', SIZE: '--max-model-mb'}
LIMIT_FIELDS = {LATENCY: 'max_latency_ms', SIZE: 'max_model_mb'}
# The tuner that can search several objectives (Optuna's multi-objective TPE).
MULTI_OBJECTIVE_TUNER = 'tpe'


def parse(text: str) -> Tuple[str, ...]:
  """('val_accuracy', 'latency_ms') from 'val_accuracy,latency_ms'; ValueError if unusable."""
  names = tuple(n.strip() for n in (text or '').split(',') if n.strip())
  unknown = [n for n in names if n not in DIRECTIONS]
  if unknown or not names:
    raise ValueError(
      f'--objectives {text}: choose from {", ".join(DIRECTIONS)}, comma-separated, '
      f'starting with {ACCURACY}.'
    )
  if names[0] != ACCURACY or len(set(names)) != len(names):
    raise ValueError(
      f'--objectives {text}: start with {ACCURACY} (what keras-tuner ranks trials by) and '
      'name each objective once.'
    )
  return names


def check(objectives: str, tuner: str, limits: Mapping[str, Optional[float]], warm: bool) -> None:
  """Raises ValueError (one line) for objectives and limits that cannot work together."""
  names = parse(objectives)
  if len(names) > 1 and tuner != MULTI_OBJECTIVE_TUNER:
    raise ValueError(
      f'--objectives {objectives} works with --tuner {MULTI_OBJECTIVE_TUNER} only: '
      f"keras-tuner's {tuner} search ranks trials by one objective."
    )
  if len(names) > 1 and warm:
    raise ValueError(
      f'--warm-start works with one objective: earlier trials carry no {names[1]} to teach.'
    )
  for name, limit in limits.items():
    if limit is None:
      continue
    if limit <= 0:
      raise ValueError(f'{LIMIT_FLAGS[name]} {limit:g}: must be > 0.')
    if name not in names:
      raise ValueError(
        f'{LIMIT_FLAGS[name]} needs {name} among the objectives: '
        f'--objectives {",".join(names + (name,))}.'
      )
