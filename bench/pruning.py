"""Benchmark: `--prune median` on the real photos, trials per hour and best score with and without.

Runs `run_local.py` on the real flower shard (default ../shared/flowers: 50
photos, split 80/20 by hash) with a random search over the image-classifier
space (examples/image_space.yaml without the augmentation switches, whose
first use would charge the backbone passes for their copies to whichever run
comes first), once without and once with `--prune median`, for each seed.
A `--no-tune` run warms one pipeline root; every run then starts from a copy
of its ML Metadata store and feature cache, so the upstream components come
from TFX's cache and the backbone features from the feature cache in all of
them, and each search is fresh. Finished runs are kept in --work: a rerun
after an interruption does only the others.

Per run: the Tuner step's wall time (its progress line), trials per hour of
it, epochs trained in all, trials pruned, the best val_accuracy the search
found and the Trainer's eval accuracy with the best hyperparameters (both on
the eval photos). Writes bench/results/pruning.json and .md.

  .venv/bin/python -m bench.pruning [--trials 16 --epochs 6 --seeds 1,2,3]
"""

import argparse
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

from bench import common
from bench.parallel_trials import machine

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TUNER_LINE = re.compile(r'\] Tuner done in ([\d.]+)s')
ACCURACY_LINE = re.compile(r'^eval accuracy: ([\d.]+)', re.M)
AUGMENT = ('augment_flip', 'augment_rotation', 'augment_zoom')


def space_without_augmentation(work: str) -> str:
  import yaml

  with open(os.path.join(ROOT, 'examples', 'image_space.yaml')) as f:
    space = yaml.safe_load(f)  # Its numbers are written 1.0e-4: plain YAML reads them.
  path = os.path.join(work, 'space.yaml')
  with open(path, 'w') as f:
    yaml.safe_dump({k: v for k, v in space.items() if k not in AUGMENT}, f, sort_keys=False)
  return path


def run(args, root: str, flags: list, log: str) -> dict:
  command = [
    sys.executable,
    'run_local.py',
    '--data-root',
    args.data_root,
    '--pipeline-root',
    root,
    '--image-size',
    str(args.image_size),
    '--accuracy-threshold',
    '0',
    *flags,
  ]
  start = time.monotonic()
  done = subprocess.run(
    command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
  )
  seconds = time.monotonic() - start
  with open(log, 'w') as f:
    f.write(done.stdout)
  if done.returncode:
    raise SystemExit(f'{" ".join(command)} failed (log: {log}):\n{done.stdout[-3000:]}')
  tuner = TUNER_LINE.findall(done.stdout)
  accuracy = ACCURACY_LINE.search(done.stdout)
  return {
    'command': ' '.join(command[1:]),
    'total_seconds': round(seconds, 1),
    'tuner_seconds': float(tuner[-1]) if tuner else None,
    'eval_accuracy': float(accuracy.group(1)) if accuracy else None,
    'log': log,
  }


def latest_report(root: str) -> list:
  reports = glob.glob(os.path.join(root, 'tuning', '*', '*', 'report', 'trials.json'))
  with open(max(reports, key=os.path.getmtime)) as f:
    return json.load(f)


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument('--data-root', default=os.path.join(os.path.dirname(ROOT), 'shared', 'flowers'))
  p.add_argument('--trials', type=int, default=16)
  p.add_argument('--epochs', type=int, default=6, help='--max-epochs of each trial')
  p.add_argument('--warmup', type=int, default=3, help='--prune-warmup')
  p.add_argument('--seeds', default='1,2,3')
  p.add_argument('--image-size', type=int, default=224)
  p.add_argument(
    '--work',
    default=os.path.join(tempfile.gettempdir(), 'pruning-bench'),
    help='folder for the runs, kept: a rerun resumes after the finished ones',
  )
  args = p.parse_args(argv)
  work = args.work
  os.makedirs(work, exist_ok=True)
  warm_root = os.path.join(work, 'warm')
  space = space_without_augmentation(work)
  if not os.path.exists(os.path.join(work, 'warm.done')):
    shutil.rmtree(warm_root, ignore_errors=True)
    warm = run(args, warm_root, ['--no-tune', '--epochs', '1'], os.path.join(work, 'warm.log'))
    print(json.dumps({'warm-up': warm}), flush=True)
    open(os.path.join(work, 'warm.done'), 'w').close()

  runs = []
  for seed in args.seeds.split(','):
    for prune in (False, True):
      name = f'seed{seed}-{"median" if prune else "none"}'
      done = os.path.join(work, f'{name}.json')
      if os.path.exists(done):
        with open(done) as f:
          runs.append(json.load(f))
        continue
      flags = ['--tuner', 'random', '--max-trials', str(args.trials)]
      flags += ['--max-epochs', str(args.epochs), '--search-space', space, '--seed', seed]
      if prune:
        flags += ['--prune', 'median', '--prune-warmup', str(args.warmup)]
      root = os.path.join(work, name)
      shutil.rmtree(root, ignore_errors=True)
      os.makedirs(root)
      # The warm run's metadata (its artifacts stay in place) and backbone features.
      shutil.copy(os.path.join(warm_root, 'metadata.sqlite'), root)
      shutil.copytree(os.path.join(warm_root, 'feature_cache'), os.path.join(root, 'feature_cache'))
      result = run(args, root, flags, os.path.join(work, f'{name}.log'))
      rows = latest_report(root)
      scores = [r['score'] for r in rows if r['score'] is not None]
      result.update(
        seed=int(seed),
        prune=prune,
        trials=len(rows),
        pruned=sum(r['status'] == 'PRUNED' for r in rows),
        epochs_trained=sum(r['epochs'] or 0 for r in rows),
        best_score=max(scores) if scores else None,
        trials_per_hour=round(len(rows) / result['tuner_seconds'] * 3600, 1),
      )
      runs.append(result)
      with open(done, 'w') as f:
        json.dump(result, f)
      print(json.dumps(result), flush=True)

  summary = {}
  for prune in (False, True):
    mine = [r for r in runs if r['prune'] == prune]
    summary['median' if prune else 'none'] = {
      'tuner_seconds': round(sum(r['tuner_seconds'] for r in mine) / len(mine), 1),
      'trials_per_hour': round(sum(r['trials_per_hour'] for r in mine) / len(mine), 1),
      'epochs_trained': round(sum(r['epochs_trained'] for r in mine) / len(mine), 1),
      'pruned': round(sum(r['pruned'] for r in mine) / len(mine), 1),
      'best_score': round(sum(r['best_score'] for r in mine) / len(mine), 3),
      'eval_accuracy': round(sum(r['eval_accuracy'] for r in mine) / len(mine), 3),
    }
  result = {
    'trials': args.trials,
    'epochs': args.epochs,
    'warmup': args.warmup,
    'image_size': args.image_size,
    'data_root': args.data_root,
    'runs': runs,
    'summary': summary,
    'machine': machine(),
  }
  common.save_results('pruning', result, markdown(result))
  return 0


def markdown(r: dict) -> str:
  m = r['machine']
  lines = [
    '# Pruning: `run_local.py --prune median` on the real photos',
    '',
    f'Random search, {r["trials"]} trials of up to {r["epochs"]} epochs (early stopping '
    f'patience 2 as always), over examples/image_space.yaml without the augmentation '
    f'switches; {r["image_size"]} px, efficientnet-lite0 features cached; the real shard '
    f'({r["data_root"]}), split 80/20 by hash. With pruning: --prune median --prune-warmup '
    f'{r["warmup"]}. Tuner step wall time; best score = best val_accuracy of the search.',
    '',
    '| seed | pruning | Tuner step (s) | trials/hour | epochs trained | pruned | best score '
    '| eval accuracy (Trainer) |',
    '|---|---|---:|---:|---:|---:|---:|---:|',
  ]
  for run in r['runs']:
    lines.append(
      f'| {run["seed"]} | {"median" if run["prune"] else "none"} | {run["tuner_seconds"]} '
      f'| {run["trials_per_hour"]} | {run["epochs_trained"]} | {run["pruned"]} '
      f'| {run["best_score"]:.3f} | {run["eval_accuracy"]:.3f} |'
    )
  lines += ['', '| mean | Tuner step (s) | trials/hour | epochs | pruned | best | eval |']
  lines += ['|---|---:|---:|---:|---:|---:|---:|']
  for name, s in r['summary'].items():
    lines.append(
      f'| {name} | {s["tuner_seconds"]} | {s["trials_per_hour"]} | {s["epochs_trained"]} '
      f'| {s["pruned"]} | {s["best_score"]:.3f} | {s["eval_accuracy"]:.3f} |'
    )
  lines += [
    '',
    f'Machine: {m["cpus"]} CPUs ({m["cpu_model"]}), TensorFlow {m["tensorflow"]}, Keras '
    f'{m["keras"]}, keras-tuner {m["keras-tuner"]}, TFX {m["tfx"]} (the CPUs are shared, so '
    'absolute times vary run to run).',
    '',
  ]
  return '\n'.join(lines)


if __name__ == '__main__':
  sys.exit(main())
