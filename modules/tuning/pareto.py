"""--objectives: what each trial is scored on, their Pareto front, and the trial chosen from it.

Accuracy is maximised; latency (`latency_ms`, single-thread batch-1, see
modules/model/latency_probe.py) and size (`model_mb`) are minimised. A trial is
on the front when no other trial is at least as good in every objective and
better in one. The Trainer trains the most accurate trial on the front within
--max-latency-ms / --max-model-mb (ties: the faster, then the smaller); with no
limits, the most accurate trial. The most accurate trial within the limits is
always on the front: a trial that dominated it would be within them too.

Pure functions of the trials' figures, so the oracle's choice (what the Tuner
writes as best_hyperparameters) and the report's are the same computation.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, List, Mapping, Optional, Sequence

# The objectives' names and checks are the options' contract (modules/objectives.py).
from modules.objectives import (  # noqa: E402,F401
  ACCURACY,
  DIRECTIONS,
  LATENCY,
  LIMIT_FIELDS,
  LIMIT_FLAGS,
  MULTI_OBJECTIVE_TUNER,
  SIZE,
  UNITS,
  check,
  parse,
)


@dataclasses.dataclass(frozen=True)
class Point:
  """One completed trial's figures, by objective name."""

  trial: str
  values: Dict[str, float]


def dominates(a: Point, b: Point, objectives: Sequence[str]) -> bool:
  """Whether `a` is at least as good as `b` in every objective and better in one."""
  better = False
  for name in objectives:
    x, y = a.values[name], b.values[name]
    if DIRECTIONS[name] == 'min':
      x, y = -x, -y
    if x < y:
      return False
    better = better or x > y
  return better


def _rank(point: Point, objectives: Sequence[str]):
  """Most accurate first; then the faster, then the smaller."""
  return tuple(
    -point.values[n] if DIRECTIONS[n] == 'max' else point.values[n] for n in objectives
  ) + (point.trial,)


def front(points: Sequence[Point], objectives: Sequence[str]) -> List[Point]:
  """The points no other point dominates, most accurate first."""
  kept = [p for p in points if not any(dominates(q, p, objectives) for q in points)]
  return sorted(kept, key=lambda p: _rank(p, objectives))


class NoTrialFits(ValueError):
  """No completed trial is within the limits."""


@dataclasses.dataclass(frozen=True)
class Choice:
  point: Point
  front: List[Point]
  within: int  # Points of the front within the limits.
  limits: Dict[str, float]  # Only the limits set.

  def line(self) -> str:
    """`chosen: trial 7, val_accuracy 0.84 at 3.1 ms (...)`: which trial, and why."""
    figures = ', '.join(
      f'{self.point.values[n]:.3g} {UNITS[n]}' for n in UNITS if n in self.point.values
    )
    if self.limits:
      limits = ' and '.join(f'{LIMIT_FLAGS[n]} {v:g}' for n, v in self.limits.items())
      why = f'the most accurate of {self.within} on the front within {limits}'
    else:
      why = f'the most accurate trial, no limits set; {len(self.front)} on the front'
    accuracy = self.point.values[ACCURACY]
    return f'chosen: trial {self.point.trial}, {ACCURACY} {accuracy:.3g} at {figures} ({why})'


def within(point: Point, limits: Mapping[str, Optional[float]]) -> bool:
  return all(v is None or point.values[n] <= v for n, v in limits.items())


def choose(
  points: Sequence[Point], objectives: Sequence[str], limits: Mapping[str, Optional[float]]
) -> Choice:
  """The most accurate point of the front within `limits`; NoTrialFits (one line) if none."""
  limits = {n: v for n, v in limits.items() if v is not None}
  if not points:
    raise NoTrialFits('no completed trial to choose from')
  on_front = front(points, objectives)
  fitting = [p for p in on_front if within(p, limits)]
  if not fitting:
    raise NoTrialFits(_none_fits(points, limits))
  return Choice(fitting[0], on_front, len(fitting), limits)


def _none_fits(points: Sequence[Point], limits: Mapping[str, float]) -> str:
  """Names the limits, the best trial for each, and the flag to loosen."""
  set_ = ' and '.join(f'{LIMIT_FLAGS[n]} {v:g}' for n, v in limits.items())
  best = []
  for name in limits:
    lowest = min(points, key=lambda p: p.values[name])
    what = 'fastest' if name == LATENCY else 'smallest'
    best.append(f'the {what} trial ({lowest.trial}) is {lowest.values[name]:.3g} {UNITS[name]}')
  flags = ' or '.join(LIMIT_FLAGS[n] for n in limits)
  return f'no trial within {set_}: {", ".join(best)}; raise {flags}'
