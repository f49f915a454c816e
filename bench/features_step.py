"""Benchmark: the BackboneFeatures step on Beam against the in-Tuner pass it replaced.

At each size (synthetic photos, data/make_sample.py, two thirds train), the
pipeline up to the Tuner (bench/pipeline_run.py, the benchmark's Hyperband
search: max 3 epochs, factor 2) runs:
- with the step, on one Beam worker, on one worker thread per core and on one
  worker process per core (`--beam-workers one|threads|processes`);
- at an earlier commit (`--before`, a checkout of the code before the step),
  whose Tuner ran the backbone pass itself.
Images/s is train + eval images over the step's time (or the in-Tuner pass's);
the time before the first trial is the runner's checks, every step before the
Tuner and the Tuner's own time outside its trials. The 1,000,000-image
Dataflow time is projected from one local worker's rate.

Writes bench/results/features_step.json and .md, and the table into bench/results.md.

  .venv/bin/python -m bench.features_step --before /path/to/older/checkout [--images 375 3670]
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

from bench import accuracy, run

SECTION = ('<!-- features step -->', '<!-- /features step -->')
MODES = ('one', 'threads', 'processes')
# TensorFlow's own threads per process: each Beam worker on one core, to measure how
# the pass scales with workers (what Dataflow adds), apart from TensorFlow's threads.
ONE_THREAD = {'TF_NUM_INTRAOP_THREADS': '1', 'TF_NUM_INTEROP_THREADS': '1'}
SEARCH = ['--tuner', 'hyperband', '--max-epochs', '3', '--factor', '2', '--stop-after', 'Tuner']
# Dataflow workers the projection is made for (the Vertex runner's default is 4).
DATAFLOW_WORKERS = (4, 32)


def _pipeline_run(repo: str, folder: str, data: str, mode: str, env=None) -> dict:
  """bench.pipeline_run of the checkout at `repo` into `folder`; its figures (those of an
  earlier run of this benchmark where `folder` has them: delete it to measure again)."""
  os.makedirs(folder, exist_ok=True)
  out = os.path.join(folder, 'figures.json')
  if os.path.isfile(out):
    return run._load(out)
  args = ['--data-root', data, '--backbone', 'efficientnet-lite0', *SEARCH]
  args += ['--beam-workers', mode, '--work', folder, '--json', out]
  print(f'bench: {folder} ...', flush=True)
  subprocess.run(
    [sys.executable, '-m', 'bench.pipeline_run', *args],
    cwd=repo,
    check=True,
    env={**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '3', 'PYTHONWARNINGS': 'ignore', **(env or {})},
  )
  return run._load(out)


def _figures(result: dict, images: int) -> dict:
  steps = result['components']
  features = steps['BackboneFeatures']['seconds'] if 'BackboneFeatures' in steps else None
  pass_seconds = features or result['feature_seconds']
  tuner = steps['Tuner']['seconds']
  before_tuner = sum(s['seconds'] for name, s in steps.items() if name != 'Tuner')
  return {
    'features_seconds': pass_seconds,
    'images_per_second': images / pass_seconds,
    'in_tuner': features is None,
    'transform_seconds': steps['Transform']['seconds'],
    'tuner_seconds': tuner,
    'trial_seconds': result['trial_seconds'],
    'before_first_trial_seconds': (result['checks_seconds'] or 0)
    + before_tuner
    + tuner
    - result['trial_seconds'],
    'peak_rss_mb': max(s['peak_rss_mb'] for s in steps.values()),
  }


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  p.add_argument('--images', type=int, nargs='+', default=[375, 3670])
  p.add_argument('--before', required=True, help='a checkout of the code before the step')
  p.add_argument(
    '--work', default=None, help='scratch folder, whose finished runs are reused (default: new)'
  )
  args = p.parse_args(argv)
  work = args.work or tempfile.mkdtemp(prefix='features-step-')
  start = time.monotonic()
  sizes = {}
  for images in args.images:
    train, evaluation = run.split_sizes(images)
    data = os.path.join(work, f'data-{images}')
    if not os.path.isdir(data):
      run._run(
        'data.make_sample',
        '--out',
        data,
        '--train-per-class',
        train,
        '--eval-per-class',
        evaluation,
      )
    count = 5 * (train + evaluation)
    rows = {
      'in-Tuner pass (before)': _pipeline_run(args.before, f'{work}/{images}-before', data, 'one')
    }
    for mode in MODES:
      rows[f'step, beam {mode}'] = _pipeline_run(run.REPO, f'{work}/{images}-{mode}', data, mode)
    for mode, name in (('one', '1 worker'), ('processes', '2 worker processes')):
      folder = f'{work}/{images}-{mode}-one-thread'
      rows[f'step, {name}, 1 TF thread each'] = _pipeline_run(
        run.REPO, folder, data, mode, ONE_THREAD
      )
    sizes[str(count)] = {name: _figures(r, count) for name, r in rows.items()}
  accuracy.publish('features_step', {'sizes': sizes}, markdown, SECTION, start)


def _projection(rate: float) -> str:
  hours = [1_000_000 / (rate * w) / 3600 for w in DATAFLOW_WORKERS]
  return ', '.join(f'{w} workers: {h:.1f} h' for w, h in zip(DATAFLOW_WORKERS, hours))


def markdown(result: dict) -> str:
  lines = [
    '## The BackboneFeatures step on Beam',
    '',
    'efficientnet-lite0 at 224 px on synthetic photos; the pipeline up to the Tuner '
    '(Hyperband, max 3 epochs, factor 2). Images/s: train + eval images over the backbone '
    "pass (the step's time, or the in-Tuner pass's before it); before the first trial: the "
    "runner's checks, every step before the Tuner and the Tuner's time outside its trials.",
    '',
    '| images | run | backbone pass (s) | images/s | Transform (s) | Tuner (s) | '
    'of which trials (s) | before the first trial (s) | peak RSS (GB) |',
    '|---:|---|---:|---:|---:|---:|---:|---:|---:|',
  ]
  for images, rows in result['sizes'].items():
    for name, f in rows.items():
      lines.append(
        f'| {int(images):,} | {name} | {f["features_seconds"]:.1f} | '
        f'{f["images_per_second"]:.0f} | {f["transform_seconds"]:.1f} | '
        f'{f["tuner_seconds"]:.1f} | {f["trial_seconds"]:.1f} | '
        f'{f["before_first_trial_seconds"]:.1f} | {f["peak_rss_mb"] / 1024:.2f} |'
      )
  largest = result['sizes'][max(result['sizes'], key=int)]
  one = largest['step, beam one']['images_per_second']
  best = max(largest[f'step, beam {m}']['images_per_second'] for m in MODES[1:])
  single = largest['step, 1 worker, 1 TF thread each']['images_per_second']
  double = largest['step, 2 worker processes, 1 TF thread each']['images_per_second']
  machine = result['machine']
  lines += [
    '',
    f'At the largest size the faster 2-worker mode is {best / one:.2f}x the images/s of one '
    'worker, whose TensorFlow already spreads the backbone over both cores; with one '
    f"TensorFlow thread a worker, 2 workers are {double / single:.2f}x one (workers' start-up "
    "included). A million images on Dataflow at this machine's rate per 2 cores "
    f"({one:.0f} images/s, an n1-standard-2's worth): {_projection(one)}, plus worker "
    "start-up (a few minutes); the backbone's CPU time is the limit, the read (about 90 KB "
    'an image) is not.',
    '',
    f'Machine: {machine["cpus"]} CPUs, Python {machine["python"]}. Command: '
    f'`.venv/bin/python -m bench.features_step --before CHECKOUT`; {result["seconds"]:.0f} s.',
    '',
  ]
  return '\n'.join(lines)


if __name__ == '__main__':
  main()
