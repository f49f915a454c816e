"""The tuning report: every trial of a search as a table, PNG plots and TensorBoard HParams logs.

The local runner writes it after a run from the search's persistent folder
(`modules.tuning.state`), and `run_local.py report PATH` re-renders it from
that folder alone. It reads keras-tuner's own trial files plus the `run.json`
(duration, epochs) that `modules.tuning.hooks` leaves in each trial folder.
"""

from __future__ import annotations

import csv
import glob
import json
import os
import shutil
from typing import Dict, List, Optional

from modules.search import search_space
from modules.search.search_space import OBJECTIVE
from modules.tuning import hooks, multi_objective, search_progress, warm_trials
from modules.tuning import state as tuning_state
from tfx_pipeline.local import front as pareto_front
from tfx_pipeline.local import report_plots
from tfx_pipeline.parallel import pool as worker_pool

REPORT_DIR = 'report'
# A trial --prune stopped early (modules/tuning/pruning.py); keras-tuner's own status is COMPLETED.
PRUNED = 'PRUNED'
SCORED = ('COMPLETED', PRUNED)
# An earlier search's trial a --warm-start search learnt from (modules/tuning/warm_trials.py):
# shown apart, never scored with this search's own, never the best.
WARM = 'WARM'


def find_project(path: str, pipeline_name: Optional[str] = None) -> str:
  """keras-tuner's project folder for `path`: a search folder, its project, a tuning dir, or a
  pipeline root (the latest search of its `pipeline_name`, by default the pipeline's own)."""
  from tfx_pipeline.config import PipelineConfig

  name = pipeline_name or PipelineConfig.pipeline_name
  candidates = [path, os.path.join(path, tuning_state.PROJECT_NAME)]
  for base in (path, tuning_state.base_dir(path, name)):
    latest = tuning_state.latest_search(base)
    if latest:
      candidates.append(os.path.join(latest, tuning_state.PROJECT_NAME))
  for candidate in candidates:
    if glob.glob(os.path.join(candidate, 'trial_*', 'trial.json')):
      return candidate
  raise FileNotFoundError(f'no keras-tuner trials under {path}')


def load_trials(project: str) -> List[dict]:
  """One row per trial, in the order trials started; then the warm-start trials (status WARM)."""
  order = _space_order(os.path.dirname(project))
  own = [_row(p, order) for p in glob.glob(os.path.join(project, 'trial_*', 'trial.json'))]
  warm = [
    _row(p, order, WARM)
    for p in glob.glob(os.path.join(project, warm_trials.PREFIX + '*', 'trial.json'))
  ]
  return sorted(own, key=lambda r: int(r['trial']) if r['trial'].isdigit() else r['trial']) + (
    sorted(warm, key=lambda r: r['trial'])
  )


def _row(path: str, order: List[str], status: Optional[str] = None) -> dict:
  with open(path) as f:
    trial = json.load(f)
  values = trial['hyperparameters']['values']
  # In the search space file's order (keras-tuner's gRPC messages sort them by type).
  values = {
    **{name: values[name] for name in order if name in values},
    **{k: v for k, v in values.items() if k not in order},
  }
  run = {}
  run_path = os.path.join(os.path.dirname(path), hooks.RUN_FILE)
  if os.path.exists(run_path):
    with open(run_path) as f:
      run = json.load(f)
  planned = values.get('tuner/epochs', 0) - values.get('tuner/initial_epoch', 0)
  status = status or trial['status']
  if status == 'COMPLETED' and run.get('pruned_at_epoch'):
    # keras-tuner ends a pruned trial COMPLETED (it is scored); the hooks recorded why it stopped.
    status = PRUNED
  return {
    'trial': trial['trial_id'],
    'status': status,
    'score': trial['score'],
    # Epochs trained (early stopping can cut them); Hyperband's plan when no record.
    'epochs': run.get('epochs', planned or None),
    'seconds': run.get('seconds'),
    'hyperparameters': search_space.public_values(values),
    'figures': pareto_front.figures(trial),  # latency_ms, model_mb: with --objectives.
  }


def _space_order(search: str) -> List[str]:
  """The hyperparameter names of the search's space file, in order ([] if it has no record)."""
  try:
    with open(os.path.join(search, tuning_state.KEY_FILE)) as f:
      space = json.load(f).get('space') or []
  except (OSError, ValueError):
    return []
  return [entry['name'] for entry in space if isinstance(entry, dict) and 'name' in entry]


def _names(rows: List[dict]) -> List[str]:
  names = []
  for row in rows:
    names += [n for n in row['hyperparameters'] if n not in names]
  return names


def _cell(value) -> str:
  if value is None:
    return '-'
  if isinstance(value, float):
    return f'{value:.4g}'
  return str(value)


def table(rows: List[dict], marked: Optional[str] = None) -> str:
  """A plain-text table: trial, hyperparameters, score (and any latency_ms, model_mb), epochs,
  duration, status; `marked` (the front's chosen trial), or else the best, marked `*`."""
  names = _names(rows)
  figures = [n for n in multi_objective.FIGURES if any(n in r.get('figures', {}) for r in rows)]
  best = _retrained(rows, marked)
  header = ['trial'] + names + ['score'] + figures + ['epochs', 'time', 'status']
  lines = [header]
  for row in rows:
    seconds = row['seconds']
    lines.append(
      [row['trial'] + (' *' if row is best else '')]
      + [_cell(row['hyperparameters'].get(n)) for n in names]
      + [_cell(row['score'])]
      + [_cell(row.get('figures', {}).get(n)) for n in figures]
      + [
        _cell(row['epochs']),
        search_progress.format_seconds(seconds) if seconds is not None else '-',
        row['status'],
      ]
    )
  widths = [max(len(str(line[i])) for line in lines) for i in range(len(header))]
  return '\n'.join(
    '  '.join(str(c).ljust(w) for c, w in zip(line, widths)).rstrip() for line in lines
  )


def _retrained(rows: List[dict], chosen: Optional[str]) -> Optional[dict]:
  """The row of the trial the Trainer retrains: the front's `chosen` one, or else the best."""
  return next((r for r in rows if r['trial'] == chosen), None) or _best(rows)


def _best(rows: List[dict]) -> Optional[dict]:
  # Pruned trials are scored too, and keras-tuner ranks them with the others.
  scored = [r for r in rows if r['status'] in SCORED and r['score'] is not None]
  return max(scored, key=lambda r: r['score']) if scored else None


def _tensorboard(rows: List[dict], log_dir: str) -> None:
  """HParams logs: `tensorboard --logdir <log_dir>` shows every trial in the HParams tab."""
  import tensorflow as tf
  from tensorboard.plugins.hparams import api as hp_api

  shutil.rmtree(log_dir, ignore_errors=True)  # Re-rendering must not duplicate trials.
  values: Dict[str, set] = {}
  for row in rows:
    for name, value in row['hyperparameters'].items():
      values.setdefault(name, set()).add(value)
  hparams = {
    name: hp_api.HParam(
      name, hp_api.Discrete(sorted(seen, key=lambda v: report_plots.sort_key(str(v))))
    )
    for name, seen in values.items()
  }
  metrics = [OBJECTIVE] + sorted({n for r in rows for n in r.get('figures', {})})
  with tf.summary.create_file_writer(log_dir).as_default():
    hp_api.hparams_config(
      hparams=list(hparams.values()), metrics=[hp_api.Metric(m) for m in metrics]
    )
  for row in rows:
    if row['score'] is None:
      continue
    with tf.summary.create_file_writer(os.path.join(log_dir, f'trial_{row["trial"]}')).as_default():
      hp_api.hparams(
        {hparams[n]: v for n, v in row['hyperparameters'].items()}, trial_id=row['trial']
      )
      for name, value in {OBJECTIVE: row['score'], **row.get('figures', {})}.items():
        tf.summary.scalar(name, value, step=row['epochs'] or 0)


def write(path: str, out_dir: Optional[str] = None) -> dict:
  """Writes the report for the search at `path`; returns its rows, table and file paths."""
  project = find_project(path)
  rows = load_trials(project)
  out_dir = out_dir or os.path.join(os.path.dirname(project), REPORT_DIR)
  os.makedirs(out_dir, exist_ok=True)
  # Scores of this search's own trials only: a warm trial's come from other data or folds.
  own = [r for r in rows if r['status'] != WARM]
  front = pareto_front.write(project, [r for r in own if r['status'] in SCORED], out_dir)
  text = table(rows, (front or {}).get('chosen'))
  files = {
    'table': os.path.join(out_dir, 'trials.txt'),
    'csv': os.path.join(out_dir, 'trials.csv'),
    'json': os.path.join(out_dir, 'trials.json'),
    'tensorboard': os.path.join(out_dir, 'tensorboard'),
  }
  with open(files['table'], 'w') as f:
    f.write(text + '\n')
  with open(files['json'], 'w') as f:
    json.dump(rows, f, indent=1)
  names = _names(rows)
  with open(files['csv'], 'w', newline='') as f:
    writer = csv.writer(f)
    writer.writerow(['trial', 'status', 'score', 'epochs', 'seconds'] + names)
    for row in rows:
      writer.writerow(
        [row['trial'], row['status'], row['score'], row['epochs'], row['seconds']]
        + [row['hyperparameters'].get(n) for n in names]
      )
  files['plots'] = report_plots.plot(own, _names(own), out_dir)
  _tensorboard(own, files['tensorboard'])
  lost = worker_pool.load_lost(project)  # Trials a parallel search lost with a dead worker.
  return {'rows': rows, 'table': text, 'dir': out_dir, 'files': files, 'lost': lost, 'front': front}


def best_score(report: dict) -> Optional[float]:
  """The score of the trial the Trainer retrains (the best, or the front's chosen); None if none."""
  best = _retrained(report['rows'], (report.get('front') or {}).get('chosen'))
  return best['score'] if best else None


def print_report(report: dict, echo=print) -> None:
  done = sum(r['status'] in SCORED for r in report['rows'])
  pruned = sum(r['status'] == PRUNED for r in report['rows'])
  warm = sum(r['status'] == WARM for r in report['rows'])
  echo(
    f'tuning report: {done} of {len(report["rows"]) - warm} trials completed'
    + (f', {pruned} of them pruned' if pruned else '')
    + (' (* chosen)' if (report.get('front') or {}).get('chosen') else ' (* best)')
    + (f'; {warm} {WARM}: earlier trials it learnt from, never the best' if warm else '')
  )
  for line in report['table'].splitlines():
    echo('  ' + line)
  pareto_front.print_front(report.get('front'), echo)
  for record in report.get('lost', []):
    echo(f'  lost with a worker: {worker_pool.describe_lost(record)}')
  echo(
    f'  ({report["dir"]}: trials.txt/.csv/.json, PNG plots; '
    f'tensorboard --logdir {report["files"]["tensorboard"]})'
  )
