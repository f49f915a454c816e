"""Benchmark: float against int8 TFLite, for each EfficientNet-Lite backbone, on real photos.

Splits the real flower photos (default: the shard in ../shared/flowers) into k
stratified folds, as bench/optimism.py does (rotation r tests on fold r,
validates on fold r+1, trains on the rest), and runs `run_local.py --no-tune
--backbone B` on each for Lite0, Lite1 and Lite2 at their native sizes. From
what each run left behind (TFLiteExport's `tflite.json`) it reads the
SavedModel's and the int8 model's test accuracy, size and single-thread
batch-1 latency; beside them, the backbone's feature extraction in images/s
on every core (batches of 32, the pipeline's feature pass). Writes
bench/results/deployable.json and .md, and the table into bench/results.md.

  .venv/bin/python -m bench.deployable [--data-root ../shared/flowers] [--folds 5] [--rotations 5]
"""

import argparse
import os
import tempfile
import time

import numpy as np

from bench import accuracy, optimism
from modules.module_config import PRETRAINED_BACKBONES

SECTION = ('<!-- deployable model on real photos -->', '<!-- /deployable model on real photos -->')


def features_per_second(records, backbone: str, stored: int, repeats: int = 3) -> float:
  """Images per second through the frozen backbone, batches of 32, from `stored`-px images.

  Resized to the backbone's own size first where `stored` is larger, as a search
  across the family does (modules/training/feature_cache.py).
  """
  import tensorflow as tf

  from modules.backbones import backbone as backbones
  from modules.preprocessing import decode_and_resize

  size = PRETRAINED_BACKBONES[backbone]
  images = decode_and_resize(tf.constant([r[0] for r in accuracy._encoded(records)]), stored)
  loaded, extract = backbones.load(backbone)  # Kept: its variables live as long as it does.
  call = tf.function(lambda x: extract(tf.image.resize(x, [size, size]) if stored != size else x))
  batches = [images[i : i + 32] for i in range(0, len(images), 32)]
  call(batches[0])  # Traced once, outside the clock.
  start = time.perf_counter()
  for _ in range(repeats):
    for batch in batches:
      call(batch).numpy()
  seconds = time.perf_counter() - start
  del loaded
  return repeats * len(images) / seconds


def one_run(records, assignment, rotation: int, folds: int, backbone: str, folder: str) -> dict:
  """The TFLite check of a --no-tune run of `backbone` with fold `rotation` as test."""
  from tfx_pipeline.config import PipelineConfig
  from tfx_pipeline.local import summary

  data, root, log = (os.path.join(folder, name) for name in ('data', 'root', 'run.log'))
  optimism.write_split(records, assignment, rotation, folds, data)
  ran = accuracy.run_pipeline(data, root, ['--no-tune', '--backbone', backbone], log)
  check = summary.read(PipelineConfig(pipeline_root=root)).tflite
  if check is None:
    raise SystemExit(f'{log}: the run has no TFLite check.')
  return {
    'rotation': rotation,
    'n': check.examples,
    'float_correct': round(check.saved_model.accuracy * check.examples),
    'int8_correct': round(check.tflite.accuracy * check.examples),
    'float_mb': check.saved_model.megabytes,
    'int8_mb': check.tflite.megabytes,
    'float_ms': check.saved_model.ms_per_image,
    'int8_ms': check.tflite.ms_per_image,
    'pushed': check.pushed,
    'seconds': ran['seconds'],
  }


def summarize(runs: list) -> dict:
  n = sum(r['n'] for r in runs)
  return {
    'n': n,
    'float_accuracy': sum(r['float_correct'] for r in runs) / n,
    'int8_accuracy': sum(r['int8_correct'] for r in runs) / n,
    'float_mb': runs[-1]['float_mb'],
    'int8_mb': runs[-1]['int8_mb'],
    'float_ms': float(np.median([r['float_ms'] for r in runs])),
    'int8_ms': float(np.median([r['int8_ms'] for r in runs])),
    'int8_pushed': sum(r['pushed'] for r in runs),
  }


def markdown(result: dict) -> str:
  lines = [
    f'Float SavedModel against int8 TFLite (`python -m bench.deployable`): {result["photos"]} real '
    f'photos, {result["rotations"]} of {result["folds"]} stratified rotations (each: train on '
    f'{result["folds"] - 2} folds, validate on one, test on one), `--no-tune`, each backbone at '
    "its native size. Accuracy pooled over the rotations' test photos; latency is the median over "
    "runs of each run's median of 50 single-thread batch-1 calls on decoded images. Feature "
    'extraction: images/s through the frozen backbone on every core, batches of 32, from images '
    'at its own size and from images stored at 260 px and resized first (a search across the '
    'family).',
    '',
    '| backbone | px | float acc | int8 acc | float MB | int8 MB | float ms | int8 ms | '
    'features img/s | from 260 px | int8 pushed |',
    '|---|---|---|---|---|---|---|---|---|---|---|',
  ]
  for name, b in result['backbones'].items():
    s = b['summary']
    lines.append(
      f'| {name} | {PRETRAINED_BACKBONES[name]} | {s["float_accuracy"]:.3f} | '
      f'{s["int8_accuracy"]:.3f} ({s["int8_accuracy"] - s["float_accuracy"]:+.3f}) | '
      f'{s["float_mb"]:.1f} | {s["int8_mb"]:.1f} | {s["float_ms"]:.1f} | {s["int8_ms"]:.1f} | '
      f'{b["features_per_second"]:.0f} | {b["features_per_second_stored_260"]:.0f} | '
      f'{s["int8_pushed"]}/{len(b["runs"])} |'
    )
  lines += ['', f'{result["machine"]}; {result["seconds"] / 60:.0f} minutes in all.', '']
  return '\n'.join(lines)


def main(argv=None) -> None:
  p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  p.add_argument('--data-root', default=accuracy.DEFAULT_DATA_ROOT)
  p.add_argument('--folds', type=int, default=5)
  p.add_argument('--rotations', type=int, default=5, help='test folds to run (at most --folds)')
  p.add_argument('--backbones', nargs='+', default=sorted(PRETRAINED_BACKBONES))
  p.add_argument('--work', default=None, help='scratch folder (default: a temporary one)')
  args = p.parse_args(argv)
  start = time.monotonic()
  work = args.work or tempfile.mkdtemp(prefix='flower-deployable-')
  records = accuracy.read_records(args.data_root)
  assignment = accuracy.stratified_folds(records, args.folds)
  backbones = {}
  for name in args.backbones:
    runs = []
    for rotation in range(min(args.rotations, args.folds)):
      folder = os.path.join(work, name, f'run-{rotation}')
      runs.append(one_run(records, assignment, rotation, args.folds, name, folder))
      r = runs[-1]
      print(
        f'{name} rotation {rotation}: float {r["float_correct"]}/{r["n"]}, int8 '
        f'{r["int8_correct"]}/{r["n"]}, {r["float_ms"]:.1f} -> {r["int8_ms"]:.1f} ms, '
        f'{r["float_mb"]:.1f} -> {r["int8_mb"]:.1f} MB ({r["seconds"]:.0f}s)',
        flush=True,
      )
    backbones[name] = {
      'runs': runs,
      'summary': summarize(runs),
      'features_per_second': features_per_second(records, name, PRETRAINED_BACKBONES[name]),
      # From images stored at the family's largest size, as a search across it keeps them.
      'features_per_second_stored_260': features_per_second(records, name, 260),
    }
  result = {
    'data_root': os.path.relpath(os.path.abspath(args.data_root), accuracy.ROOT),
    'photos': len(records),
    'folds': args.folds,
    'rotations': min(args.rotations, args.folds),
    'backbones': backbones,
  }
  accuracy.publish('deployable', result, markdown, SECTION, start)


if __name__ == '__main__':
  main()
