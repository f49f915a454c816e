"""Benchmark: the search's optimism and the served probabilities' calibration on real photos.

Splits the real flower photos (default: the shard in ../shared/flowers, 10 per
class) into k stratified folds, as bench/accuracy.py does. Run r tests on fold
r, selects on fold r+1 (the validation shards: what the Tuner picks its best
trial by) and trains on the rest, through `run_local.py` (the default tuned
run). Per run it reads the summary's test accuracy with its count and Wilson
interval, and the best trial's validation accuracy: their gap is how much the
search's own figure flatters the model. It also reads the Evaluator's
reliability bins on the test fold, before and after the temperature the
Trainer fitted on the validation fold: the ECE per run, and pooled over every
run's test photos. Writes bench/results/optimism.json and .md, and the table
into bench/results.md.

  .venv/bin/python -m bench.optimism [--data-root ../shared/flowers] [--folds 5] [--seeds 0 1]

`--seeds` repeats the rotation on other stratified splits of the same photos.
"""

import argparse
import dataclasses
import os
import re
import tempfile
import time

import numpy as np

from bench import accuracy
from modules.model import calibration
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


def read_reliability(root: str, data: str) -> dict:
  """The run's temperature and its test reliability bins (before, after), from what it left."""
  from tfx_pipeline.config import PipelineConfig
  from tfx_pipeline.local import summary

  run = summary.read(PipelineConfig(pipeline_root=root, data_root=data))
  found = run.evaluation.reliability if run.evaluation else None
  if not found or not run.calibration:
    raise SystemExit(f'{root}: no reliability plots or temperature: was the model calibrated?')
  return {
    'temperature': run.calibration.temperature,
    'before': [dataclasses.astuple(b) for b in found.before],
    'after': [dataclasses.astuple(b) for b in found.after],
    'ece_before': found.ece_before,
    'ece_after': found.ece_after,
  }


def pooled_ece(runs: list, key: str) -> float:
  """The ECE of every run's test photos together: bins of the same edges add up."""
  bins = [calibration.Bin(*b) for b in runs[0][key]]
  for r in runs[1:]:
    bins = [
      calibration.Bin(a.lower, a.upper, a.count + n, a.confidence + c, a.correct + k)
      for a, (_, _, n, c, k) in zip(bins, r[key])
    ]
  return calibration.expected_calibration_error(bins)


def _run_name(run: dict, index: int) -> str:
  return f'{run.get("seed", 0)}, {run.get("fold", index) + 1}'


def calibration_lines(runs: list) -> list:
  before, after = pooled_ece(runs, 'before'), pooled_ece(runs, 'after')
  lower = sum(r['ece_after'] < r['ece_before'] for r in runs)
  lines = [
    '',
    'Calibration (temperature fitted on the validation fold, ECE with 15 bins on the test fold):',
    '',
    '| seed, run | temperature | test ECE before | test ECE after |',
    '|---|---:|---:|---:|',
  ]
  for i, r in enumerate(runs):
    lines.append(
      f'| {_run_name(r, i)} | {r["temperature"]:.3f} | {r["ece_before"]:.3f} '
      f'| {r["ece_after"]:.3f} |'
    )
  for seed in sorted({r.get('seed', 0) for r in runs}):
    of_seed = [r for r in runs if r.get('seed', 0) == seed]
    lines.append(
      f'| seed {seed}, pooled | | {pooled_ece(of_seed, "before"):.3f} '
      f'| {pooled_ece(of_seed, "after"):.3f} |'
    )
  lines += [
    f'| pooled | | {before:.3f} | {after:.3f} |',
    '',
    f'ECE lower after calibration in {lower} of {len(runs)} runs; pooled over all test photos '
    f'{before:.3f} -> {after:.3f}. Accuracy is the same before and after: the argmax does '
    'not move.',
  ]
  return lines


def markdown(result: dict) -> str:
  runs, k = result['runs'], result['folds']
  gaps = [r['gap'] for r in runs]
  tests = [r['test'] for r in runs]
  n = sum(r['n'] for r in runs)
  pooled = sum(r['correct'] for r in runs)
  low, high = wilson_interval(pooled, n)
  seeds = result.get('seeds', [0])
  lines = [
    f"## The search's optimism on real photos: {k} rotating three-way splits",
    '',
    f'Data: {result["photos"]} real flower photos ({result["data_root"]}) in {k} stratified '
    'folds; run r tests on fold r, the Tuner selects on fold r+1, training uses the other '
    f'{k - 2}; repeated on {len(seeds)} stratified split(s) (seeds {seeds}), so each photo is '
    f'a test photo {len(seeds)} time(s). The default tuned run (Hyperband, '
    f'{result["image_size"]} px). Total time {result["seconds"]:.0f}s.',
    '',
    '| seed, run | test accuracy (95% CI) | best trial, validation | gap |',
    '|---|---|---:|---:|',
  ]
  for i, r in enumerate(runs):
    lo, hi = r['interval']
    lines.append(
      f'| {_run_name(r, i)} | {r["test"]:.3f} ({r["correct"]}/{r["n"]}, {lo:.2f}-{hi:.2f}) '
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
    *calibration_lines(runs),
  ]
  return '\n'.join(lines) + '\n'


def main(argv=None) -> None:
  p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  p.add_argument('--data-root', default=accuracy.DEFAULT_DATA_ROOT)
  p.add_argument('--folds', type=int, default=5)
  p.add_argument('--seeds', type=int, nargs='+', default=[0], help='one rotation per seed')
  p.add_argument('--image-size', type=int, default=224)
  p.add_argument('--work', default=None, help='scratch folder (default: a temporary one)')
  args = p.parse_args(argv)
  data_root = args.data_root
  start = time.monotonic()
  work = args.work or tempfile.mkdtemp(prefix='flower-optimism-')
  records = accuracy.read_records(data_root)
  runs = []
  for seed in args.seeds:
    assignment = accuracy.stratified_folds(records, args.folds, seed)
    for fold in range(args.folds):
      folder = os.path.join(work, f'seed-{seed}', f'run-{fold}')
      data, root, log = (os.path.join(folder, name) for name in ('data', 'root', 'run.log'))
      write_split(records, assignment, fold, args.folds, data)
      accuracy.run_pipeline(data, root, ['--image-size', str(args.image_size)], log)
      runs.append({'seed': seed, 'fold': fold, **read_run(log), **read_reliability(root, data)})
      r = runs[-1]
      print(
        f'seed {seed} run {fold + 1}/{args.folds}: test {r["test"]:.3f} '
        f'({r["correct"]}/{r["n"]}), best trial {r["best_trial"]:.3f}, gap {r["gap"]:+.3f}, '
        f'ECE {r["ece_before"]:.3f} -> {r["ece_after"]:.3f} (T {r["temperature"]:.2f})',
        flush=True,
      )
  result = {
    'data_root': os.path.relpath(os.path.abspath(data_root), accuracy.ROOT),
    'photos': len(records),
    'folds': args.folds,
    'seeds': args.seeds,
    'image_size': args.image_size,
    'runs': runs,
  }
  accuracy.publish('optimism', result, markdown, SECTION, start)


if __name__ == '__main__':
  main()
