"""Benchmark: the search's optimism on real photos, by rotating stratified three-way splits.

Splits the real flower photos (default: the shard in ../shared/flowers, 10 per
class) into k stratified folds, as bench/accuracy.py does. Run r tests on fold
r, selects on fold r+1 (the validation shards: what the Tuner picks its best
trial by) and trains on the rest, through `run_local.py` (the default tuned
run). Per run it reads the summary's test accuracy with its count and Wilson
interval, and the best trial's validation accuracy: their gap is how much the
search's own figure flatters the model. Writes bench/results/optimism.json and
.md, and the table into bench/results.md.

  .venv/bin/python -m bench.optimism [--data-root ../shared/flowers] [--folds 5]
"""

import argparse
import os
import re
import tempfile
import time

import numpy as np

from bench import accuracy, common
from bench.parallel_trials import machine
from tfx_pipeline.local.evaluation import wilson_interval

TEST_LINE = re.compile(r'^test accuracy: ([\d.]+) \((\d+)/(\d+), 95% CI ([\d.]+)-([\d.]+)\)', re.M)
BEST_LINE = re.compile(r"^  best trial's eval accuracy: ([\d.]+) ", re.M)
SECTION = ('<!-- optimism on real photos -->', '<!-- /optimism on real photos -->')


def write_split(records, assignment, test_fold: int, folds: int, folder: str) -> None:
  """Published-layout shards: fold `test_fold` as test, the next fold as validation."""
  import tensorflow as tf

  os.makedirs(folder, exist_ok=True)
  role = {test_fold: 'test', (test_fold + 1) % folds: 'validation'}
  for split in ('train', 'validation', 'test'):
    path = os.path.join(folder, accuracy.SHARD.format(split=split))
    with tf.io.TFRecordWriter(path) as writer:
      for record, fold in zip(records, assignment):
        if role.get(fold, 'train') == split:
          writer.write(record[0])


def read_run(log: str) -> dict:
  """The test accuracy (count, interval) and the best trial's eval score a run printed."""
  with open(log) as f:
    text = f.read()
  test, best = TEST_LINE.search(text), BEST_LINE.search(text)
  if not test or not best:
    raise SystemExit(f'{log}: no "test accuracy" or "best trial" line: is it a tuned run?')
  value, correct, n, low, high = test.groups()
  return {
    'test': float(value),
    'correct': int(correct),
    'n': int(n),
    'interval': [float(low), float(high)],
    'best_trial': float(best.group(1)),
    'gap': float(best.group(1)) - float(value),
  }


def markdown(result: dict) -> str:
  runs, k = result['runs'], result['folds']
  gaps = [r['gap'] for r in runs]
  tests = [r['test'] for r in runs]
  n = sum(r['n'] for r in runs)
  pooled = sum(r['correct'] for r in runs)
  low, high = wilson_interval(pooled, n)
  lines = [
    f"## The search's optimism on real photos: {k} rotating three-way splits",
    '',
    f'Data: {result["photos"]} real flower photos ({result["data_root"]}) in {k} stratified '
    'folds; run r tests on fold r, the Tuner selects on fold r+1, training uses the other '
    f'{k - 2}. The default tuned run (Hyperband, {result["image_size"]} px). Total time '
    f'{result["seconds"]:.0f}s.',
    '',
    '| run | test accuracy (95% CI) | best trial, validation | gap |',
    '|---|---|---:|---:|',
  ]
  for i, r in enumerate(runs):
    lo, hi = r['interval']
    lines.append(
      f'| {i + 1} | {r["test"]:.3f} ({r["correct"]}/{r["n"]}, {lo:.2f}-{hi:.2f}) '
      f'| {r["best_trial"]:.3f} | {r["gap"]:+.3f} |'
    )
  lines += [
    f'| all | {pooled / n:.3f} ({pooled}/{n}, {low:.2f}-{high:.2f}) '
    f'| {np.mean([r["best_trial"] for r in runs]):.3f} '
    f'| {np.mean(gaps):+.3f} ± {np.std(gaps):.3f} |',
    '',
    f"Mean test accuracy {np.mean(tests):.3f} ± {np.std(tests):.3f}; the best trial's "
    f'validation score is above it by {np.mean(gaps):+.3f} on average. '
    f'Machine: {result["machine"]["cpus"]} CPUs. Command: `.venv/bin/python -m bench.optimism`.',
  ]
  return '\n'.join(lines) + '\n'


def main(argv=None) -> None:
  p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  p.add_argument('--data-root', default=accuracy.DEFAULT_DATA_ROOT)
  p.add_argument('--folds', type=int, default=5)
  p.add_argument('--image-size', type=int, default=224)
  p.add_argument('--work', default=None, help='scratch folder (default: a temporary one)')
  args = p.parse_args(argv)
  data_root = args.data_root
  start = time.monotonic()
  work = args.work or tempfile.mkdtemp(prefix='flower-optimism-')
  records = accuracy.read_records(data_root)
  assignment = accuracy.stratified_folds(records, args.folds)
  runs = []
  for fold in range(args.folds):
    data = os.path.join(work, f'run-{fold}', 'data')
    write_split(records, assignment, fold, args.folds, data)
    log = os.path.join(work, f'run-{fold}', 'run.log')
    flags = ['--image-size', str(args.image_size)]
    accuracy.run_pipeline(data, os.path.join(work, f'run-{fold}', 'root'), flags, log)
    runs.append(read_run(log))
    r = runs[-1]
    print(
      f'run {fold + 1}/{args.folds}: test {r["test"]:.3f} ({r["correct"]}/{r["n"]}), '
      f'best trial {r["best_trial"]:.3f}, gap {r["gap"]:+.3f}',
      flush=True,
    )
  result = {
    'data_root': os.path.relpath(os.path.abspath(data_root), accuracy.ROOT),
    'photos': len(records),
    'folds': args.folds,
    'image_size': args.image_size,
    'runs': runs,
    'machine': machine(),
    'seconds': time.monotonic() - start,
  }
  text = markdown(result)
  common.save_results('optimism', result, text)
  accuracy.into_results_md(text, SECTION)


if __name__ == '__main__':
  main()
