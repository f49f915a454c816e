"""Benchmark: the same search run by `run_local.py` with --parallel-trials 1 and 2.

Each run gets a fresh pipeline root (so neither TFX's cache nor a saved search
is reused) and runs the whole pipeline; the Tuner step's wall time comes from
the runner's progress line (`[6/9] Tuner done in 123.4s`). Writes
bench/results/parallel_trials.json and .md with the machine it ran on.

  .venv/bin/python bench/parallel_trials.py [--trials 8 --epochs 3 --image-size 224]
"""

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from importlib import metadata

from bench import common

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TUNER_LINE = re.compile(r'\] Tuner done in ([\d.]+)s')
TRIAL_LINE = re.compile(r'^(\[tuner\d+\] )?trial \S+: ')


def machine() -> dict:
  versions = {
    name: metadata.version(name) for name in ('tensorflow', 'keras', 'keras-tuner', 'tfx', 'grpcio')
  }
  return {
    'cpus': len(os.sched_getaffinity(0)),
    'cpu_model': _cpu_model(),
    'platform': platform.platform(),
    'python': platform.python_version(),
    **versions,
  }


def _cpu_model() -> str:
  try:
    with open('/proc/cpuinfo') as f:
      for line in f:
        if line.startswith('model name'):
          return line.split(':', 1)[1].strip()
  except OSError:
    pass
  return platform.processor()


def run_once(workers: int, args, work: str) -> dict:
  root = os.path.join(work, f'parallel-{workers}')
  command = [
    sys.executable,
    'run_local.py',
    '--tuner',
    'random',
    '--max-trials',
    str(args.trials),
    '--max-epochs',
    str(args.epochs),
    '--image-size',
    str(args.image_size),
    '--epochs',
    '1',
    '--pipeline-root',
    root,
    '--no-cache',
    '--parallel-trials',
    str(workers),
  ]
  load_before = os.getloadavg()
  start = time.monotonic()
  done = subprocess.run(
    command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
  )
  seconds = time.monotonic() - start
  with open(os.path.join(work, f'parallel-{workers}.log'), 'w') as f:
    f.write(done.stdout)
  if done.returncode:
    raise SystemExit(f'run_local.py --parallel-trials {workers} failed:\n{done.stdout[-3000:]}')
  tuner = [float(m.group(1)) for m in TUNER_LINE.finditer(done.stdout)]
  trials = [line for line in done.stdout.splitlines() if TRIAL_LINE.match(line)]
  return {
    'parallel_trials': workers,
    'tuner_seconds': tuner[-1] if tuner else None,
    'total_seconds': round(seconds, 1),
    'trial_lines': len(trials),
    'load_before': [round(x, 2) for x in load_before],
    'load_after': [round(x, 2) for x in os.getloadavg()],
    'command': ' '.join(command[1:]),
    'log': os.path.join(work, f'parallel-{workers}.log'),
  }


def markdown(result: dict) -> str:
  m = result['machine']
  lines = [
    '# Parallel trials: `run_local.py --parallel-trials N`',
    '',
    f'Search: random, {result["trials"]} trials x {result["epochs"]} epochs at '
    f'{result["image_size"]} px, sample data, fresh pipeline root per run (whole pipeline; '
    'Trainer 1 epoch).',
    '',
    '| --parallel-trials | Tuner step (s) | whole run (s) | load avg before → after (1 min) |',
    '|---|---|---|---|',
  ]
  for run in result['runs']:
    lines.append(
      f'| {run["parallel_trials"]} | {run["tuner_seconds"]} | {run["total_seconds"]} '
      f'| {run["load_before"][0]} → {run["load_after"][0]} |'
    )
  lines += [
    '',
    f'Tuner speed-up (1 → 2): {result["tuner_speedup"]}x',
    '',
    f'Machine: {m["cpus"]} CPUs ({m["cpu_model"]}), {m["platform"]}, Python {m["python"]}; '
    f'TensorFlow {m["tensorflow"]}, Keras {m["keras"]}, keras-tuner {m["keras-tuner"]}, '
    f'TFX {m["tfx"]}, grpcio {m["grpcio"]}.',
    '',
  ]
  return '\n'.join(lines)


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument('--trials', type=int, default=8)
  p.add_argument('--epochs', type=int, default=3)
  p.add_argument('--image-size', type=int, default=224)
  p.add_argument('--work', default=None, help='folder for the runs (default: a temporary one)')
  args = p.parse_args(argv)
  work = args.work or tempfile.mkdtemp(prefix='parallel-trials-')
  runs = []
  for workers in (1, 2):
    runs.append(run_once(workers, args, work))
    print(json.dumps(runs[-1]), flush=True)
  serial, parallel = runs[0]['tuner_seconds'], runs[1]['tuner_seconds']
  result = {
    'trials': args.trials,
    'epochs': args.epochs,
    'image_size': args.image_size,
    'runs': runs,
    'machine': machine(),
    'tuner_speedup': round(serial / parallel, 2) if serial and parallel else None,
  }
  common.save_results('parallel_trials', result, markdown(result))
  return 0


if __name__ == '__main__':
  sys.exit(main())
