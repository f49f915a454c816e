"""One run of this pipeline (local runner) with per-component wall time and peak memory.

Runs `tfx_pipeline.local.runner.run` in this process, with a thread sampling
the process's resident memory, and reads the Tuner's trial times from its
tuning report. Run by bench/run.py, once with the feature cache and once without.
"""

import glob
import io
import json
import os
import re
import sys
import threading
import time

from bench import common


class _Sampler(threading.Thread):
  """Peak RSS (this process and any Beam worker processes) between the runner's component lines."""

  def __init__(self):
    super().__init__(daemon=True)
    import psutil

    self._psutil = psutil
    self._process = psutil.Process()
    self.peak = 0

  def run(self):
    while True:
      self.peak = max(self.peak, self._rss())
      time.sleep(0.05)

  def _rss(self) -> int:
    total = self._process.memory_info().rss
    for child in self._process.children(recursive=True):
      try:
        total += child.memory_info().rss
      except self._psutil.Error:  # It ended meanwhile.
        pass
    return total

  def take(self) -> float:
    """The peak since the last call, at least the memory in use now (a step may be too quick)."""
    peak, self.peak = max(self.peak, self._rss()), 0
    return peak / 2**20


class _Tee(io.TextIOBase):
  def __init__(self, stream):
    self.stream, self.text = stream, ''

  def write(self, text):
    self.text += text
    return self.stream.write(text)

  def flush(self):
    self.stream.flush()


def main(argv=None):
  p = common.step_parser(__doc__)
  p.add_argument('--no-feature-cache', action='store_true')
  p.add_argument('--epochs', type=int, default=3, help='Trainer epochs')
  p.add_argument('--pipeline-root', help='default: <work>/pipeline')
  p.add_argument(
    '--reuse-upstream',
    action='store_true',
    help="take unchanged steps from TFX's cache (an earlier run in --pipeline-root)",
  )
  p.add_argument('--stop-after', help='end the run with this component, e.g. Tuner')
  p.add_argument('--beam-workers', default='auto')
  args = p.parse_args(argv)
  from tfx_pipeline.local import cli
  from tfx_pipeline.local import runner as local_runner

  cli.set_up_logging(verbose=False)
  flags = [
    '--data-root',
    args.data_root,
    '--pipeline-root',
    args.pipeline_root or os.path.join(args.work, 'pipeline'),
    '--backbone',
    args.backbone,
    '--image-size',
    str(args.image_size),
    '--tuner',
    args.tuner,
    '--max-epochs',
    str(args.max_epochs),
    '--factor',
    str(args.factor),
    '--max-trials',
    str(args.max_trials),
    '--epochs',
    str(args.epochs),
    '--batch-size',
    str(args.batch_size),
    '--seed',
    str(args.seed),
    '--accuracy-threshold',
    '0',
    '--beam-workers',
    args.beam_workers,
  ]
  if not args.reuse_upstream:
    flags.append('--no-cache')
  if args.no_feature_cache:
    flags.append('--no-feature-cache')
  config = cli.config_from_args(cli.run_parser().parse_args(flags))

  sampler = _Sampler()
  sampler.start()
  components, first_step = {}, []
  started = time.monotonic()
  # tuner_fn and run_fn print their feature cache lines: keep a copy of stdout.
  tee = _Tee(sys.stdout)
  sys.stdout = tee

  def echo(line):
    print(line, flush=True)
    done = re.match(r'\[\d+/\d+\] (\S+) done in ([\d.]+)s', line)
    if done:
      components[done.group(1)] = {
        'seconds': float(done.group(2)),
        'peak_rss_mb': round(sampler.take(), 1),
      }
    elif re.match(r'\[\d+/\d+\] \S+ \.\.\.', line):
      sampler.take()  # Start each component's peak afresh.
      if not first_step:  # What ran before: the backbone load and the data check.
        first_step.append(time.monotonic() - started)

  with common.Timer() as run:
    summary = local_runner.run(config, echo=echo, stop_after=args.stop_after)
  sys.stdout = tee.stream
  trials = []
  if 'Tuner' in components:
    search = max(
      glob.glob(os.path.join(config.pipeline_root, 'tuning', '*', '*', 'report', 'trials.json')),
      key=os.path.getmtime,
    )
    with open(search) as f:
      trials = json.load(f)
  # 'feature cache: train (efficientnet-lite0, 224 px): computed (40, 1280) features in 8.1s ...'
  feature_seconds = sum(float(s) for s in re.findall(r'computed .* in ([\d.]+)s', tee.text))
  common.write(
    args.json,
    {
      'wall_seconds': run.seconds,
      'checks_seconds': first_step[0] if first_step else None,
      'components': components,
      'trial_seconds': sum(t['seconds'] or 0 for t in trials),
      'trials': len(trials),
      'epochs': sum(t['epochs'] or 0 for t in trials),
      'best_score': max((t['score'] for t in trials if t['score'] is not None), default=None),
      'best_hyperparameters': summary.best_hyperparameters,
      'accuracy': summary.accuracy,
      'feature_seconds': feature_seconds,
      'transformed_examples': _transformed_sizes(config.pipeline_root),
      'feature_cache_files': sorted(
        glob.glob(os.path.join(config.pipeline_root, 'feature_cache', '*.npz'))
      ),
    },
  )


def _transformed_sizes(pipeline_root):
  """Bytes on disk of the newest transformed examples, per split."""
  outputs = glob.glob(os.path.join(pipeline_root, 'Transform', 'transformed_examples', '*'))
  newest = max(outputs, key=lambda path: int(os.path.basename(path)))
  sizes = {}
  for split in ('train', 'eval'):
    files = glob.glob(os.path.join(newest, f'Split-{split}', '*'))
    sizes[split] = {'files': files, 'bytes': sum(os.path.getsize(f) for f in files)}
  return sizes


if __name__ == '__main__':
  main()
