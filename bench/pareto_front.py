"""Benchmark: accuracy against latency over backbone x image size x head, on real photos.

The first of two stratified folds of the real photos (default: ../shared/flowers;
25 to train, 25 to score and evaluate: more photos to score by than a 5-fold's 10,
so fewer ties), one TPE search of a fixed budget over examples/size_space.yaml
(EfficientNet-Lite0/1/2 at 160-260 px, two head sizes, two learning rates) on
val_accuracy and latency_ms (`--objectives`). The same command then runs without a
limit (the most accurate trial) and with `--max-latency-ms` at 90% of that
trial's latency: a rerun with another limit resumes the finished search
and chooses again, so the two runs share every trial. Each chosen trial is
trained and scored by the Evaluator. Writes bench/results/pareto_front.json and
.md, the front's PNG beside them, and the table into bench/results.md.

  .venv/bin/python -m bench.pareto_front [--data-root ../shared/flowers] [--trials 16]
"""

import argparse
import os
import re
import shutil
import tempfile
import time

from bench import accuracy
from tfx_pipeline.local import report

SPACE = os.path.join(accuracy.ROOT, 'examples', 'size_space.yaml')
SECTION = ('<!-- pareto front on real photos -->', '<!-- /pareto front on real photos -->')
COLUMNS = ('backbone', 'image_size', 'units', 'learning_rate')


def _run(data, root, log, args, *extra) -> dict:
  flags = [
    *('--tuner', 'tpe', '--search-space', SPACE, '--no-tflite', '--seed', str(args.seed)),
    *('--max-trials', str(args.trials), '--max-epochs', str(args.max_epochs)),
    *('--objectives', args.objectives, *extra),
  ]
  result = accuracy.run_pipeline(data, root, flags, log)
  with open(log) as f:
    text = f.read()
  result['chosen_line'] = re.search(r'^chosen: .*$', text, re.M).group(0)
  written = report.write(root)
  result['chosen'] = written['front']['chosen']
  result['front'] = written['front']['front']
  result['rows'] = [
    {
      'trial': r['trial'],
      **{k: r['hyperparameters'].get(k) for k in COLUMNS},
      'val_accuracy': r['score'],
      **r['figures'],
    }
    for r in written['rows']
  ]
  result['png'] = next(p for p in written['front']['files'] if p.endswith('.png'))
  return result


def markdown(result: dict) -> str:
  free, limited = result['no_limit'], result['limited']
  lines = [
    '## The Pareto front: backbone x image size x head, on real photos',
    '',
    f'Data: {result["photos"]} real flower photos ({result["data_root"]}), fold 1 of '
    f'{result["folds"]}: '
    f'{result["photos"] - result["eval_size"]} to train, {result["eval_size"]} to score trials '
    f'and to evaluate (no test shards: the eval figure is optimistic). One TPE search of '
    f'{result["trials"]} trials (`--max-epochs {result["max_epochs"]}`, seed {result["seed"]}) '
    f'over `examples/size_space.yaml` on {result["objectives"]} (latency: one thread, batch 1); '
    f'{len(free["front"])} of {len(free["rows"])} trials on the front (`*`).',
    '',
    '| trial | backbone | image size | units | learning rate | val accuracy | latency ms | MB |',
    '|---|---|---:|---:|---:|---:|---:|---:|',
  ]
  for row in sorted(free['rows'], key=lambda r: r.get('latency_ms') or 0):
    mark = ' *' if row['trial'] in free['front'] else ''
    lines.append(
      f'| {row["trial"]}{mark} | {row["backbone"]} | {row["image_size"]} | {row["units"]} | '
      f'{row["learning_rate"]:g} | {row["val_accuracy"]:.2f} | {row["latency_ms"]:.1f} | '
      f'{row["model_mb"]:.1f} |'
    )
  lines += [
    '',
    '| run | chosen | eval accuracy (Evaluator) | seconds |',
    '|---|---|---:|---:|',
    f'| no limit | {free["chosen_line"]} | {free["accuracy"]:.2f} | {free["seconds"]:.0f} |',
    f'| `--max-latency-ms {result["limit"]:g}` | {limited["chosen_line"]} | '
    f'{limited["accuracy"]:.2f} | {limited["seconds"]:.0f} |',
    '',
    "The front: `bench/results/pareto_front.png` (every trial, the front, the limited run's "
    f'choice ringed and its limit dashed). Machine: {result["machine"]["cpus"]} CPUs; '
    f'{result["seconds"]:.0f} s in all. Command: `.venv/bin/python -m bench.pareto_front`.',
  ]
  return '\n'.join(lines) + '\n'


def main(argv=None) -> None:
  p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  p.add_argument('--data-root', default=accuracy.DEFAULT_DATA_ROOT)
  p.add_argument('--trials', type=int, default=16)
  p.add_argument('--max-epochs', type=int, default=3)
  p.add_argument('--folds', type=int, default=2)
  p.add_argument('--objectives', default='val_accuracy,latency_ms')
  p.add_argument('--seed', type=int, default=42)
  p.add_argument('--work', default=None, help='scratch folder (default: a temporary one)')
  args = p.parse_args(argv)
  start = time.monotonic()
  work = args.work or tempfile.mkdtemp(prefix='flower-pareto-')
  records = accuracy.read_records(args.data_root)
  data = os.path.join(work, 'fold-0')
  accuracy.write_fold(records, accuracy.stratified_folds(records, args.folds), 0, data)
  root = os.path.join(work, 'root')
  free = _run(data, root, os.path.join(work, 'no-limit.log'), args)
  # Just below the most accurate trial's latency: the limit has to trade accuracy away.
  chosen = next(r for r in free['rows'] if r['trial'] == free['chosen'])
  limit = round(0.9 * chosen['latency_ms'], 1)
  limited = _run(
    data, root, os.path.join(work, 'limited.log'), args, '--max-latency-ms', str(limit)
  )
  shutil.copy(limited['png'], os.path.join(accuracy.ROOT, 'bench', 'results', 'pareto_front.png'))
  result = {
    'data_root': os.path.relpath(os.path.abspath(args.data_root), accuracy.ROOT),
    'photos': len(records),
    'eval_size': len(records) // args.folds,
    'folds': args.folds,
    'objectives': args.objectives,
    'trials': args.trials,
    'max_epochs': args.max_epochs,
    'seed': args.seed,
    'limit': limit,
    'no_limit': free,
    'limited': limited,
  }
  accuracy.publish('pareto_front', result, markdown, SECTION, start)


if __name__ == '__main__':
  main()
