"""Benchmark: how many trials a search needs with and without `--warm-start`, on real photos.

An earlier TPE search runs on one stratified fold of the real photos (default:
../shared/flowers); new TPE searches run on another fold, once cold and once
warm-started from the earlier one, for several seeds, each in a pipeline root
of its own kind (a search's key leaves out its warm trials, so a warm run in
the cold run's root would resume the finished cold search). The figure: the
trials a search runs before one scores within one eval photo of the best score
any of the new searches reached, and before one reaches it; and the mean score
of a search's trials (how much of the budget goes on poor points). Warm trials
are not run, so they are not counted. The space is bench/warm_start_space.yaml. Writes
bench/results/warm_start.json and .md, and the table into bench/results.md.

  .venv/bin/python -m bench.warm_start [--data-root ../shared/flowers] [--seeds 1 2 3]
"""

import argparse
import glob
import json
import os
import tempfile
import time

import numpy as np

from bench import accuracy

SPACE = os.path.join(accuracy.ROOT, 'bench', 'warm_start_space.yaml')
SECTION = ('<!-- warm start on real photos -->', '<!-- /warm start on real photos -->')


def own_scores(root: str) -> list:
  """The newest search's own trials' scores in the order they ran (warm ones left out)."""
  reports = glob.glob(os.path.join(root, 'tuning', '*', '*', 'report', 'trials.json'))
  with open(max(reports, key=os.path.getmtime)) as f:
    rows = [r for r in json.load(f) if r['trial'].isdigit()]
  return [r['score'] for r in sorted(rows, key=lambda r: int(r['trial']))]


def trials_needed(scores: list, target: float):
  """1-based index of the first trial scoring at least `target`; None if none does."""
  return next((i + 1 for i, s in enumerate(scores) if s is not None and s >= target - 1e-9), None)


def markdown(result: dict) -> str:
  n, held, trials = result['photos'], result['eval_size'], result['trials']
  lines = [
    '## Warm start: trials to come within one photo of the best',
    '',
    f'Data: {n} real flower photos ({result["data_root"]}), 5 stratified folds: the earlier '
    f'search ({result["earlier_trials"]} TPE trials) trains on folds other than fold '
    f'{result["earlier_fold"] + 1} and is scored on it; each new search ({trials} TPE trials, '
    f'seeds {", ".join(map(str, result["seeds"]))}) on fold {result["new_fold"] + 1} ({held} '
    f'photos). Best score of any new search: {result["best"]:.2f}; a search is within one '
    f'photo at {result["target"]:.2f}. `--max-epochs {result["max_epochs"]}`, '
    f'{result["image_size"]} px, efficientnet-lite0, space `bench/warm_start_space.yaml`. '
    f'{result["transferred"]}.',
    '',
    '| seed | trials to within one photo, cold / warm | trials to the best, cold / warm | '
    'mean trial score, cold / warm | eval accuracy, cold / warm |',
    '|---|---:|---:|---:|---:|',
  ]

  def shown(v):
    return f'>{trials}' if v is None else str(v)

  for row in result['rows']:
    c, w = row['cold'], row['warm']
    lines.append(
      f'| {row["seed"]} | {shown(c["needed"])} / {shown(w["needed"])} | '
      f'{shown(c["to_best"])} / {shown(w["to_best"])} | {np.mean(c["scores"]):.2f} / '
      f'{np.mean(w["scores"]):.2f} | {c["accuracy"]:.2f} / {w["accuracy"]:.2f} |'
    )
  mean = result['mean_needed']
  lines += [
    f'| mean (a search that never got there counts {trials + 1}) | {mean["cold"]:.1f} / '
    f'{mean["warm"]:.1f} | {mean["cold_to_best"]:.1f} / {mean["warm_to_best"]:.1f} | '
    f'{mean["cold_score"]:.2f} / {mean["warm_score"]:.2f} | |',
    '',
    f'Machine: {result["machine"]["cpus"]} CPUs; {result["seconds"]:.0f} s in all. '
    'Command: `.venv/bin/python -m bench.warm_start`.',
  ]
  return '\n'.join(lines) + '\n'


def _search(data, root, log, seed, trials, args, extra=()):
  flags = [
    *('--tuner', 'tpe', '--search-space', SPACE, '--no-tflite'),
    *('--max-trials', str(trials), '--max-epochs', str(args.max_epochs)),
    *('--image-size', str(args.image_size), '--seed', str(seed), *extra),
  ]
  result = accuracy.run_pipeline(data, root, flags, log)
  with open(log) as f:
    warm = [line.strip() for line in f if line.startswith('warm start:')]
  return {**result, 'scores': own_scores(root), 'warm_line': warm[0] if warm else None}


def _means(runs: list, trials: int) -> dict:
  """Per kind: mean trials to within one photo, to the best (never: trials + 1), mean score."""
  out = {}
  for kind in ('cold', 'warm'):
    out[kind] = float(np.mean([row[kind]['needed'] or trials + 1 for row in runs]))
    out[f'{kind}_to_best'] = float(np.mean([row[kind]['to_best'] or trials + 1 for row in runs]))
    out[f'{kind}_score'] = float(np.mean([np.mean(row[kind]['scores']) for row in runs]))
  return out


def main(argv=None) -> None:
  p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  p.add_argument('--data-root', default=accuracy.DEFAULT_DATA_ROOT)
  p.add_argument('--seeds', type=int, nargs='+', default=[1, 2, 3])
  p.add_argument('--trials', type=int, default=10, help='trials of each new search')
  p.add_argument('--earlier-trials', type=int, default=16)
  p.add_argument('--max-epochs', type=int, default=2)
  p.add_argument('--image-size', type=int, default=224)
  p.add_argument('--work', default=None, help='scratch folder (default: a temporary one)')
  args = p.parse_args(argv)
  start = time.monotonic()
  work = args.work or tempfile.mkdtemp(prefix='flower-warm-start-')
  records = accuracy.read_records(args.data_root)
  assignment = accuracy.stratified_folds(records, 5)
  earlier_fold, new_fold = 1, 0
  for fold in (earlier_fold, new_fold):
    accuracy.write_fold(records, assignment, fold, os.path.join(work, f'fold-{fold}'))
  earlier_root = os.path.join(work, 'earlier')
  log = os.path.join(work, 'earlier.log')
  _search(
    os.path.join(work, f'fold-{earlier_fold}'), earlier_root, log, 0, args.earlier_trials, args
  )
  runs = []
  for seed in args.seeds:
    row = {'seed': seed}
    for kind, extra in (('cold', ()), ('warm', ('--warm-start', earlier_root))):
      data = os.path.join(work, f'fold-{new_fold}')
      log = os.path.join(work, f'{kind}-{seed}.log')
      row[kind] = _search(data, os.path.join(work, kind), log, seed, args.trials, args, extra)
      print(f'seed {seed}, {kind}: scores {row[kind]["scores"]}', flush=True)
    runs.append(row)
  best = max(s for row in runs for kind in ('cold', 'warm') for s in row[kind]['scores'] if s)
  target = best - 1.0 / (len(records) // 5)
  for row in runs:
    for kind in ('cold', 'warm'):
      row[kind]['needed'] = trials_needed(row[kind]['scores'], target)
      row[kind]['to_best'] = trials_needed(row[kind]['scores'], best)
  result = {
    'data_root': os.path.relpath(os.path.abspath(args.data_root), accuracy.ROOT),
    'photos': len(records),
    'eval_size': len(records) // 5,
    'earlier_fold': earlier_fold,
    'new_fold': new_fold,
    'earlier_trials': args.earlier_trials,
    'trials': args.trials,
    'max_epochs': args.max_epochs,
    'image_size': args.image_size,
    'seeds': args.seeds,
    'best': best,
    'target': target,
    # The earlier search's folder is a scratch path: the line up to it.
    'transferred': (runs[0]['warm']['warm_line'] or 'no warm start line').split(' from ')[0],
    'rows': runs,
    'mean_needed': _means(runs, args.trials),
  }
  accuracy.publish('warm_start', result, markdown, SECTION, start)


if __name__ == '__main__':
  main()
