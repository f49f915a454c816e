"""Benchmark: one meaning for an epoch, and fine-tuning, on real photos by stratified k-fold.

The same folds as bench/accuracy.py (its helpers); on each fold, one pipeline
root, four runs of `run_local.py` (without the TFLite step, which does not
change the Evaluator's figure):

- a short Hyperband search on cached features, and the same search with
  `--no-feature-cache` (the backbone runs in every step): an epoch is the same
  training on both paths, so they should agree within the folds' noise;
- the search space defaults with a frozen backbone (`--no-tune`), and the same
  with `--fine-tune`: the head first, then the backbone, never below frozen.

Writes bench/results/epochs.json and .md, and the table into bench/results.md.

  .venv/bin/python -m bench.epochs [--data-root ../shared/flowers] [--folds 5]
"""

import argparse
import json
import os
import re
import tempfile
import time

from bench import accuracy

SEARCH = ['--max-epochs', '2', '--factor', '2']
TRAIN = ['--no-tune', '--epochs', '3']
SETTINGS = {
  'hyperband (max 2 epochs, factor 2), cached features': SEARCH,
  'the same search, --no-feature-cache': [*SEARCH, '--no-feature-cache'],
  '--no-tune --epochs 3, frozen backbone': TRAIN,
  '--no-tune --epochs 3 --fine-tune': [*TRAIN, '--fine-tune'],
}
SECTION = ('<!-- epochs on real photos -->', '<!-- /epochs on real photos -->')


def markdown(result: dict) -> str:
  k, n, held = result['folds'], result['photos'], result['eval_size']
  lines = [
    f'## One meaning for an epoch, and fine-tuning: {k}-fold cross-validation',
    '',
    (f'The first {result["folds_run"]} of the {k} folds. ' if result['folds_run'] < k else '')
    + f'Data: {n} real flower photos ({result["data_root"]}), each fold trains on {n - held} and '
    f'evaluates on the other {held} (the Evaluator, raw JPEGs through the exported model); '
    f'{result["image_size"]} px, efficientnet-lite0. An epoch is a pass over the train split, '
    'at least 50 steps, on every path; cached features (and the head phase of `--fine-tune`) '
    "are the BackboneFeatures step's records. Seconds: each run's own `finished in`, "
    f'{sum(sum(row["seconds"]) for row in result["rows"].values()):.0f} s in all.',
    '',
    '| setting | mean eval accuracy | std | per fold | seconds per fold |',
    '|---|---:|---:|---|---|',
  ]
  carried = result.get('carried_over', [])
  for name, row in result['rows'].items():
    per_fold = ', '.join(f'{a:.2f}' for a in row['accuracies'])
    seconds = ', '.join(f'{s:.0f}' for s in row['seconds'])
    name += ' (earlier run)' if name in carried else ''
    lines.append(f'| {name} | {row["mean"]:.3f} | {row["std"]:.3f} | {per_fold} | {seconds} |')
  m = result['machine']
  if carried:
    lines += [
      '',
      '"(earlier run)": figures of the previous run of this benchmark, on a path the change '
      'since did not touch (`--carry-over`).',
    ]
  lines += [
    '',
    'Before an epoch had one meaning, the uncached path trained one pass (3 steps on 80 photos) '
    'where the cached one trained 50 steps: a Hyperband search scored 0.80 cached and 0.56 '
    'uncached; and `--fine-tune` trained a random head with the backbone from the start: 0.36.',
    '',
    f'Machine: {m["cpus"]} CPUs ({m["cpu_model"]}), Python {m["python"]}; TensorFlow '
    f'{m["tensorflow"]}, Keras {m["keras"]}, keras-tuner {m["keras-tuner"]}, TFX {m["tfx"]}. '
    'Command: `.venv/bin/python -m bench.epochs`.',
  ]
  return '\n'.join(lines) + '\n'


def _run(data: str, root: str, flags: list, log: str) -> dict:
  """accuracy.run_pipeline, or what an earlier run of this benchmark left in `log` (--work)."""
  if os.path.isfile(log):
    with open(log) as f:
      text = f.read()
    found = accuracy.ACCURACY_LINE.search(text)
    finished = re.search(r'^finished in (\d+)s', text, re.M)
    if found and finished:
      return {'accuracy': float(found.group(1)), 'seconds': float(finished.group(1))}
  return accuracy.run_pipeline(data, root, flags, log)


def main(argv=None) -> None:
  p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  p.add_argument('--data-root', default=accuracy.DEFAULT_DATA_ROOT)
  p.add_argument('--folds', type=int, default=5)
  p.add_argument('--image-size', type=int, default=224)
  p.add_argument('--only-folds', type=int, default=None, help='run the first N folds only')
  p.add_argument(
    '--work', default=None, help='scratch folder, whose finished runs are reused (default: new)'
  )
  p.add_argument(
    '--carry-over',
    nargs='*',
    default=[],
    help='settings (by a part of their name) whose figures are taken from the last '
    'bench/results/epochs.json instead of run again: for paths a change did not touch',
  )
  args = p.parse_args(argv)
  start = time.monotonic()
  work = args.work or tempfile.mkdtemp(prefix='flower-epochs-')
  records = accuracy.read_records(args.data_root)
  assignment = accuracy.stratified_folds(records, args.folds)
  ran = args.only_folds or args.folds
  flags = ['--no-tflite', '--image-size', str(args.image_size)]
  carried = {n for n in SETTINGS if any(part in n for part in args.carry_over)}
  earlier = _earlier(carried)
  to_run = {name: own for name, own in SETTINGS.items() if name not in carried}
  ran_now = accuracy.run_folds(records, assignment, to_run, work, flags, ran, run=_run)
  per_setting = {name: ran_now.get(name) or earlier[name] for name in SETTINGS}
  result = {
    'data_root': os.path.relpath(os.path.abspath(args.data_root), accuracy.ROOT),
    'photos': len(records),
    'folds': args.folds,
    'folds_run': ran,
    'eval_size': len(records) // args.folds,
    'image_size': args.image_size,
    'rows': accuracy.summarize(per_setting, len(records) // args.folds),
    'per_setting': per_setting,
    'carried_over': sorted(carried),
  }
  accuracy.publish('epochs', result, markdown, SECTION, start)


def _earlier(names) -> dict:
  """{setting: its per-fold results} from the last bench/results/epochs.json, for `names`."""
  if not names:
    return {}
  with open(os.path.join(accuracy.ROOT, 'bench', 'results', 'epochs.json')) as f:
    return {name: json.load(f)['per_setting'][name] for name in names}


if __name__ == '__main__':
  main()
