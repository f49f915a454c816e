"""Benchmark: resident memory over a long search, trial by trial, as `run_local.py` runs it.

Runs `run_local.py --tuner random --max-trials N --max-epochs 1` on the sample
(cached features: the head's trials), once in the Tuner's own process and once
with `--parallel-trials 2`, and samples the resident memory of the run's process
and of each process it starts once a second, against the trials finished so far
(the console's trial lines). Target: RSS at the last trial within 10% of RSS at
trial 10, in every process that runs trials. Writes bench/results/memory.json,
.md and memory.png.

  .venv/bin/python -m bench.memory [--trials 500]
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time

from bench import accuracy, common
from bench.parallel_trials import machine

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRIAL_LINE = re.compile(r'^(\[tuner\d+\] )?trial \d+/\d+: ')
# The trial to compare the last one with: past the first trials' one-off allocations.
BASELINE_TRIAL = 10
SECTION = ('<!-- memory over a long search -->', '<!-- /memory over a long search -->')
# The built-in space has 72 points, and keras-tuner's random search ends once it
# draws no new one: a continuous learning rate gives every trial a point of its own.
SPACE = """units: {type: int, min: 64, max: 256, step: 64, default: 128}
dense_activation: {type: choice, values: [relu, tanh, sigmoid], default: relu}
learning_rate: {type: float, min: 1.0e-4, max: 1.0e-2, sampling: log, default: 1.0e-3}
optimizer: {type: choice, values: [sgd, adam], default: adam}
"""


def _sample(pid: int, trials: list, samples: list, done: threading.Event) -> None:
  """Every second: (trials finished, {process: RSS MB}) for the run and each process it started."""
  import psutil

  run = psutil.Process(pid)
  while not done.is_set():
    try:
      procs = [run, *run.children(recursive=True)]
      rss = {}
      for p in procs:
        try:
          name = 'run' if p.pid == pid else f'{p.pid} {" ".join(p.cmdline()[1:3])}'
          rss[name] = p.memory_info().rss / 2**20
        except psutil.Error:
          pass
      samples.append((len(trials), rss))
    except psutil.Error:
      return
    done.wait(1.0)


def run_once(workers: int, args, work: str) -> dict:
  root = os.path.join(work, f'workers-{workers}')
  space = os.path.join(work, 'space.yaml')
  with open(space, 'w') as f:
    f.write(SPACE)
  command = [sys.executable, 'run_local.py', '--data-root', args.data_root, '--search-space', space]
  command += ['--pipeline-root', root, '--tuner', 'random', '--max-trials', str(args.trials)]
  command += ['--max-epochs', '1', '--epochs', '1', '--no-tflite', '--accuracy-threshold', '0']
  command += ['--parallel-trials', str(workers)] if workers > 1 else []
  trials, samples, done = [], [], threading.Event()
  start = time.monotonic()
  process = subprocess.Popen(
    command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
  )
  sampler = threading.Thread(target=_sample, args=(process.pid, trials, samples, done), daemon=True)
  sampler.start()
  try:
    with open(os.path.join(work, f'workers-{workers}.log'), 'w') as log:
      for line in process.stdout:
        log.write(line)
        if TRIAL_LINE.match(line):
          trials.append(time.monotonic() - start)
    process.wait()
  finally:
    if process.poll() is None:
      process.kill()
    done.set()
    sampler.join()
  if process.returncode:
    raise SystemExit(f'{" ".join(command[1:])} exited {process.returncode}: see {log.name}')
  return {
    'workers': workers,
    'command': ' '.join(command[1:]),
    'seconds': time.monotonic() - start,
    'trials': len(trials),
    'curves': _curves(samples),
  }


def _curves(samples) -> dict:
  """{process: [[trials finished, RSS MB just after], ...]} for the processes that run trials.

  Each point is the first sample after the trial's line (the last trial's later
  samples are the Trainer's and the Evaluator's). A process that runs trials
  lives through the whole search: processes seen in fewer than half the search's
  samples (latency checks, short helpers) are left out.
  """
  searching = [(n, rss) for n, rss in samples if n > 0]
  names = {name for _, rss in searching for name in rss}
  curves = {}
  for name in sorted(names):
    points = {}
    for n, rss in searching:
      if rss.get(name) and n not in points:  # 0: an exited process not yet reaped.
        points[n] = round(rss[name], 1)
    if len(points) * 2 >= len({n for n, _ in searching}):
      curves[name] = sorted(points.items())
  return curves


def growth(curve) -> float:
  """RSS at the last trial over RSS at trial BASELINE_TRIAL (or the nearest after it), minus 1."""
  at = dict(curve)
  base = next(at[n] for n in sorted(at) if n >= BASELINE_TRIAL)
  return at[max(at)] / base - 1


def process_name(run: dict, name: str) -> str:
  if name != 'run':
    return f'worker {name.split()[0]}'
  return 'Tuner process' if run['workers'] == 1 else 'chief (the run)'


def plot(runs, path: str, before=()) -> None:
  """RSS by trial of each trial-running process; `before`'s runs (an earlier build) dashed."""
  import matplotlib

  matplotlib.use('Agg')
  from matplotlib import pyplot as plt

  figure, axes = plt.subplots(figsize=(8, 4.5))
  for runs, style, prefix in ((runs, '-', ''), (before, '--', 'before: ')):
    for run in runs:
      for name, curve in run['curves'].items():
        label = f'{prefix}{run["label"]}: {process_name(run, name)}'
        axes.plot(*zip(*curve), style, label=label, linewidth=1.2)
  axes.set_xlabel('trials finished')
  axes.set_ylabel('resident memory (MB)')
  axes.set_ylim(bottom=0)
  axes.set_title('Memory over a random search on cached features (run_local.py)')
  axes.legend(fontsize=8)
  axes.grid(alpha=0.3)
  figure.tight_layout()
  figure.savefig(path, dpi=110)
  plt.close(figure)


def _rows(runs, prefix=''):
  for run in runs:
    for name, curve in run['curves'].items():
      at = dict(curve)
      base = next(at[n] for n in sorted(at) if n >= BASELINE_TRIAL)
      yield (
        f'| {prefix}{run["label"]} | {process_name(run, name)} | {max(at)} | {base:.0f} '
        f'| {at[max(at)]:.0f} | {growth(curve):+.1%} | {run["seconds"]:.0f} |'
      )


def markdown(result: dict, png: str = 'memory.png') -> str:
  """The table and the plot; `png` is the plot's path from where the text is read."""
  before = result.get('before')
  lines = [
    f'## Memory over a {result["trials"]}-trial search',
    '',
    f'`run_local.py --tuner random --max-trials {result["trials"]} --max-epochs 1` on '
    f"{result['data_root']} (cached features, the head's trials; a continuous learning rate, so "
    'no two trials are alike), resident memory sampled once a second. Growth: RSS just after the '
    f'last trial against RSS just after trial {BASELINE_TRIAL}; target: within 10%.',
    '',
    '| run | process | trials | RSS at trial 10 (MB) | RSS at the end (MB) | growth | seconds |',
    '|---|---|---:|---:|---:|---:|---:|',
    *_rows(result['runs']),
    *(_rows(before['runs'], f'before ({before["label"]}): ') if before else []),
    '',
    f'![RSS by trial]({png})',
    '',
  ]
  m = result['machine']
  lines.append(
    f'Machine: {m["cpus"]} CPUs ({m["cpu_model"]}), Python {m["python"]}; TensorFlow '
    f'{m["tensorflow"]}, Keras {m["keras"]}, keras-tuner {m["keras-tuner"]}, TFX {m["tfx"]}. '
    'Command: `.venv/bin/python -m bench.memory`.'
  )
  return '\n'.join(lines) + '\n'


def publish(result: dict) -> None:
  """memory.json, .md and .png in bench/results, and the section of bench/results.md."""
  before = result.get('before')
  plot(result['runs'], os.path.join(common.RESULTS, 'memory.png'), before['runs'] if before else ())
  common.save_results('memory', result, markdown(result))
  accuracy.into_results_md(markdown(result, 'results/memory.png'), SECTION)


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument('--trials', type=int, default=500)
  p.add_argument('--data-root', default='data/sample')
  p.add_argument('--workers', type=int, nargs='+', default=[1, 2], help='--parallel-trials values')
  p.add_argument('--work', default=None, help='folder for the runs (default: a temporary one)')
  p.add_argument(
    '--before', nargs=2, metavar=('JSON', 'LABEL'), help="an earlier build's memory.json to compare"
  )
  p.add_argument('--replot', action='store_true', help='rewrite the results from memory.json')
  args = p.parse_args(argv)
  if args.replot:
    with open(os.path.join(common.RESULTS, 'memory.json')) as f:
      result = {k: v for k, v in json.load(f).items() if k != 'before'}
  else:
    result = {
      'trials': args.trials,
      'data_root': args.data_root,
      'runs': measure(args),
      'machine': machine(),
    }
  if args.before:
    with open(args.before[0]) as f:
      result['before'] = {'label': args.before[1], 'runs': json.load(f)['runs']}
  publish(result)
  return 0


def measure(args) -> list:
  work = args.work or tempfile.mkdtemp(prefix='memory-')
  os.makedirs(work, exist_ok=True)
  runs = []
  for workers in args.workers:
    run = run_once(workers, args, work)
    run['label'] = 'sequential' if workers == 1 else f'--parallel-trials {workers}'
    runs.append(run)
    print({name: f'{growth(c):+.1%}' for name, c in run['curves'].items()}, flush=True)
  return runs


if __name__ == '__main__':
  sys.exit(main())
