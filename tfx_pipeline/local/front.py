"""The tuning report's Pareto front (--objectives with latency_ms / model_mb): a table and a PNG.

report.py reads each trial's figures (`figures`) from keras-tuner's trial.json;
the objectives and limits are those the search's last run wrote beside its
trials (modules/tuning/multi_objective.py), and the choice is the oracle's own
computation (modules/tuning/pareto.py), so the report shows the trial the
Trainer trained.
"""

from __future__ import annotations

import os
from typing import Dict, List, Optional

from modules.tuning import multi_objective, pareto
from tfx_pipeline.local import figures as png

FRONT_TABLE = 'front.txt'
FRONT_PNG = 'pareto_front.png'


def figures(trial: dict) -> Dict[str, float]:
  """A trial.json's latency_ms and model_mb (the last value of each it holds)."""
  metrics = (trial.get('metrics') or {}).get('metrics') or {}
  out = {}
  for name in multi_objective.FIGURES:
    observations = (metrics.get(name) or {}).get('observations') or []
    if observations:
      out[name] = float(observations[-1]['value'][0])
  return out


def points(rows: List[dict], objectives) -> List[pareto.Point]:
  """The scored rows that have every objective's figure."""
  out = []
  for row in rows:
    values = {pareto.ACCURACY: row['score'], **row.get('figures', {})}
    if all(values.get(n) is not None for n in objectives):
      out.append(pareto.Point(row['trial'], {n: values[n] for n in objectives}))
  return out


def write(project: str, rows: List[dict], out_dir: str) -> Optional[dict]:
  """The front of `rows` (scored, this search's own): its table and PNG; None for one objective."""
  settings = multi_objective.read_choice_file(project)
  if not settings:
    return None
  objectives = tuple(settings['objectives'])
  scored = points(rows, objectives)
  on_front = pareto.front(scored, objectives)
  try:
    choice = pareto.choose(scored, objectives, settings.get('limits') or {})
    line = choice.line()
  except pareto.NoTrialFits as e:
    choice, line = None, f'chosen: none ({e})'
  chosen, limits = choice.point.trial if choice else None, settings.get('limits') or {}
  text = table(on_front, objectives, chosen)
  table_path = os.path.join(out_dir, FRONT_TABLE)
  with open(table_path, 'w') as f:
    f.write(f'{line}\n{text}\n')
  return {
    'objectives': objectives,
    'front': [p.trial for p in on_front],
    'trials': len(scored),
    'chosen': chosen,
    'line': line,
    'table': text,
    'files': [table_path, plot(scored, on_front, chosen, os.path.join(out_dir, FRONT_PNG), limits)],
  }


def table(on_front: List[pareto.Point], objectives, chosen: Optional[str]) -> str:
  """One row per trial of the front, most accurate first; the chosen one marked `*`."""
  lines = [['trial', *objectives]]
  for point in on_front:
    mark = ' *' if point.trial == chosen else ''
    lines.append([point.trial + mark] + [f'{point.values[n]:.4g}' for n in objectives])
  widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
  return '\n'.join('  '.join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in lines)


def plot(scored, on_front, chosen: Optional[str], path: str, limits=None) -> str:
  """Accuracy against latency: every trial, the front as a step line, the chosen one ringed."""
  plt = png.pyplot()
  fig, ax = plt.subplots(figsize=(6, 4))
  x_name = pareto.LATENCY if scored and pareto.LATENCY in scored[0].values else pareto.SIZE
  ax.scatter(
    [p.values[x_name] for p in scored],
    [p.values[pareto.ACCURACY] for p in scored],
    color='tab:gray',
    label='trial',
  )
  by_x = sorted(on_front, key=lambda p: p.values[x_name])
  ax.step(
    [p.values[x_name] for p in by_x],
    [p.values[pareto.ACCURACY] for p in by_x],
    where='post',
    color='tab:blue',
    marker='o',
    label='Pareto front',
  )
  for point in scored:
    if point.trial == chosen:
      x, y = point.values[x_name], point.values[pareto.ACCURACY]
      ax.scatter([x], [y], s=200, facecolors='none', edgecolors='tab:red', label='chosen')
      ax.annotate(f'trial {chosen}', (x, y), textcoords='offset points', xytext=(8, -12))
  if (limits or {}).get(x_name) is not None:
    ax.axvline(limits[x_name], color='tab:red', linestyle='--', label=pareto.LIMIT_FLAGS[x_name])
  ax.set_xlabel(f'{x_name} ({pareto.UNITS[x_name]}, single thread, batch 1)')
  ax.set_ylabel(pareto.ACCURACY)
  ax.set_title(f'{len(on_front)} of {len(scored)} trials on the front')
  ax.legend(loc='lower right')
  return png.save(fig, path)


def print_front(front: Optional[dict], echo) -> None:
  if not front:
    return
  echo(
    f'Pareto front: {len(front["front"])} of {front["trials"]} trials '
    f'({", ".join(front["objectives"])}; * chosen)'
  )
  for line in front['table'].splitlines():
    echo('  ' + line)
  echo(f'  {front["line"]}')
  echo(f'  ({", ".join(front["files"])})')
