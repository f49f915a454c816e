"""The benchmark: the plain keras-tuner script vs this pipeline, with and without the feature
cache, against the floor, at several data sizes and with two backbones.

`python -m bench.run [--images 375 3670] [--quick]` generates synthetic flower
data for each size (two thirds train, one third eval), and for each backbone
(the pretrained default efficientnet-lite0, and ResNet50V2 with random weights
saved as a local SavedModel) runs, each in its own process with its own peak
memory: the pipeline with the feature cache (every step timed), the floor,
the plain keras-tuner script and the pipeline's Tuner without the cache. Then
the stored image formats (bench/io_formats.py), a long random search on
cached features (bench/trials.py) and, at the largest size, the steps up to
Transform with one Beam worker and with a process per core. Writes
results.json and results.md next to this file (or to --out), keeping the
accuracy section bench/accuracy.py writes there.

The plain script and the pipeline without the cache run every image through
the backbone in every epoch. Above --full-search-up-to images both run a
shorter search (random search, 1 trial of 2 epochs) and the report estimates
the whole search's time from it (times 17/2 epochs), saying so.
"""

import argparse
import hashlib
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
BACKBONES = ('efficientnet-lite0', 'resnet50v2')
# The search every measurement runs (bench/common.py): Hyperband(max_epochs=3, factor=2).
MAX_EPOCHS, FACTOR = 3, 2
# The shorter search of the baseline and the pipeline without the cache on large data.
SHORT_SEARCH = ['--tuner', 'random', '--max-trials', 1, '--max-epochs', 2]
SHORT_SEARCH_EPOCHS = 2
# Transform's speed on the main branch before uint8 storage (bench/results.md then).
TRANSFORM_BEFORE = 33.5
UPSTREAM = ('ImportExampleGen', 'StatisticsGen', 'SchemaGen', 'ExampleValidator', 'Transform')
TARGETS = (
  # (summary key, text, test, how the miss is said)
  ('transform_speedup', 'Transform ≥ 5× faster per image than 33.5 images/s', lambda v: v >= 5),
  ('transform_bytes_per_example', '≤ 160 KB per transformed example', lambda v: v <= 160_000),
  (
    'without_cache_over_baseline',
    'pipeline without the cache no slower than the plain script',
    lambda v: v <= 1.0,
  ),
  ('baseline_over_with_cache', 'plain script / pipeline Tuner step ≥ 10×', lambda v: v >= 10),
  ('with_cache_over_floor', 'pipeline Tuner step ≤ 1.3× the floor', lambda v: v <= 1.3),
  ('upstream_over_search', 'ImportExampleGen → Transform ≤ 20% of the search', lambda v: v <= 0.2),
  ('peak_rss_mb', 'peak RSS of any step ≤ 3 GB', lambda v: v <= 3072),
)


def full_epochs() -> int:
  from modules.tuner import hyperband_schedule

  return hyperband_schedule(MAX_EPOCHS, FACTOR)[1]


def _run(module, *args):
  """`python -m module args` from the repo root; its wall time in seconds."""
  start = time.monotonic()
  subprocess.run(
    [sys.executable, '-m', module, *map(str, args)],
    cwd=REPO,
    check=True,
    env={**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '3', 'PYTHONWARNINGS': 'ignore'},
  )
  return time.monotonic() - start


def _load(path):
  with open(path) as f:
    return json.load(f)


def _machine():
  model = next(
    (
      line.split(':', 1)[1].strip()
      for line in open('/proc/cpuinfo')
      if line.startswith('model name')
    ),
    platform.processor(),
  )
  memory = next(
    (int(line.split()[1]) / 2**20 for line in open('/proc/meminfo') if line.startswith('MemTotal')),
    None,
  )
  return {
    'cpu': model,
    'cores': os.cpu_count(),
    'memory_gb': round(memory, 1),
    'python': platform.python_version(),
    'platform': platform.platform(),
    'versions': {
      p: importlib.metadata.version(p)
      for p in ('tensorflow', 'keras', 'keras-tuner', 'tfx', 'tensorflow-transform', 'apache-beam')
    },
  }


def split_sizes(images: int):
  """(train, eval) images per class for `images` in all over 5 classes, two thirds train."""
  per_class = max(3, round(images / 5))
  evaluation = max(1, round(per_class / 3))
  return per_class - evaluation, evaluation


def _step(name, module, folder, *args):
  os.makedirs(folder, exist_ok=True)
  out = os.path.join(folder, 'figures.json')
  print(f'bench: {name} ...', flush=True)
  seconds = _run(module, *args, '--work', folder, '--json', out)
  result = _load(out)
  result['process_seconds'] = seconds
  return result


def _transformed_digest(files):
  """A hash of the sorted transformed examples' contents (order and proto map order aside)."""
  import tensorflow as tf

  rows = []
  for record in tf.data.TFRecordDataset(sorted(files), compression_type='GZIP'):
    feature = tf.train.Example.FromString(record.numpy()).features.feature
    rows.append(
      hashlib.sha256(
        feature['image'].bytes_list.value[0] + str(feature['label'].int64_list.value[0]).encode()
      ).hexdigest()
    )
  return hashlib.sha256(''.join(sorted(rows)).encode()).hexdigest()[:16]


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  p.add_argument(
    '--images',
    type=int,
    nargs='+',
    default=[375, 3670],
    help='data sizes, train + eval images (two thirds train; default: %(default)s)',
  )
  p.add_argument('--backbones', nargs='+', choices=BACKBONES, default=list(BACKBONES))
  p.add_argument(
    '--full-search-up-to',
    type=int,
    default=375,
    help='above this many images the baseline and the pipeline without the cache run the '
    'shorter search (default: %(default)s)',
  )
  p.add_argument('--trials', type=int, default=50, help='trials of the long random search')
  p.add_argument('--image-size', type=int, default=None, help='default 224, 64 with --quick')
  p.add_argument('--quick', action='store_true', help='tiny run for development: 64 px, 30 images')
  p.add_argument('--work', default=None, help='scratch folder (default: a new temporary one)')
  p.add_argument('--out', default=HERE, help='where results.md/json go (default: bench/)')
  p.add_argument(
    '--render', action='store_true', help='only rewrite results.md from the results.json in --out'
  )
  args = p.parse_args(argv)
  if args.render:
    figures = _load(os.path.join(args.out, 'results.json'))
    _write_report(args.out, figures)
    return
  sizes = [30] if args.quick and args.images == p.get_default('images') else args.images
  size = args.image_size or (64 if args.quick else 224)
  trials = 6 if args.quick and args.trials == p.get_default('trials') else args.trials
  work = args.work or tempfile.mkdtemp(prefix='flower-bench-')
  load_before = os.getloadavg()
  start = time.monotonic()
  seconds = {}
  resnet = os.path.join(work, 'resnet50v2')
  seconds['backbone_save'] = _run('bench.backbone', '--out', resnet, '--image-size', size)
  handles = {'efficientnet-lite0': 'efficientnet-lite0', 'resnet50v2': resnet}
  runs = {}
  for images in sizes:
    train_per_class, eval_per_class = split_sizes(images)
    data = os.path.join(work, f'data-{images}')
    seconds[f'data_{images}'] = _run(
      'data.make_sample',
      '--out',
      data,
      '--train-per-class',
      train_per_class,
      '--eval-per-class',
      eval_per_class,
    )
    full = images <= args.full_search_up_to
    for name in args.backbones:
      folder = os.path.join(work, f'{images}-{name}')
      common = ['--data-root', data, '--backbone', handles[name], '--image-size', size]
      common += ['--max-epochs', MAX_EPOCHS, '--factor', FACTOR]
      search = [] if full else SHORT_SEARCH
      label = f'{images} images, {name}'
      result = {'images': train_per_class * 5 + eval_per_class * 5, 'full_search': full}
      result['with_cache'] = _step(
        f'{label}: pipeline with the feature cache',
        'bench.pipeline_run',
        os.path.join(folder, 'with_cache'),
        *common,
      )
      result['floor'] = _step(
        f'{label}: floor', 'bench.floor', os.path.join(folder, 'floor'), *common
      )
      result['baseline'] = _step(
        f'{label}: plain keras-tuner script',
        'bench.baseline_keras_tuner',
        os.path.join(folder, 'baseline'),
        *common,
        *search,
      )
      # The Tuner alone, on the with-cache run's upstream outputs (from TFX's cache).
      result['without_cache'] = _step(
        f'{label}: pipeline Tuner without the feature cache',
        'bench.pipeline_run',
        os.path.join(folder, 'without_cache'),
        *common,
        *search,
        '--no-feature-cache',
        '--pipeline-root',
        os.path.join(folder, 'with_cache', 'pipeline'),
        '--reuse-upstream',
        '--stop-after',
        'Tuner',
      )
      runs.setdefault(str(images), {})[name] = result
  largest = str(max(sizes))
  first = runs[largest][args.backbones[0]]
  transformed = first['with_cache']['transformed_examples']
  data = os.path.join(work, f'data-{largest}')
  io = _step(
    'stored image formats',
    'bench.io_formats',
    os.path.join(work, 'io'),
    '--data-root',
    data,
    '--image-size',
    size,
    '--transformed',
    *transformed['train']['files'],
    *transformed['eval']['files'],
  )
  cached = runs[largest].get('efficientnet-lite0', first)['with_cache']['feature_cache_files']
  long_search = _step(
    f'{trials}-trial random search on cached features',
    'bench.trials',
    os.path.join(work, 'trials'),
    '--trials',
    trials,
    '--features',
    *cached,
  )
  beam_modes = {'threads': {'Transform': first['with_cache']['components']['Transform']}}
  beam_modes['threads']['digest'] = _transformed_digest(
    transformed['train']['files'] + transformed['eval']['files']
  )
  for mode in ('one', 'processes'):
    run = _step(
      f'{largest} images: ImportExampleGen to Transform, Beam on {mode}',
      'bench.pipeline_run',
      os.path.join(work, f'beam-{mode}'),
      '--data-root',
      data,
      '--backbone',
      handles[args.backbones[0]],
      '--image-size',
      size,
      '--beam-workers',
      mode,
      '--stop-after',
      'Transform',
    )
    files = run['transformed_examples']
    beam_modes[mode] = {
      **{c: run['components'][c] for c in UPSTREAM if c in run['components']},
      'digest': _transformed_digest(files['train']['files'] + files['eval']['files']),
    }
  figures = {
    'machine': _machine(),
    'load_average_before': load_before,
    'load_average_after': os.getloadavg(),
    'image_size': size,
    'sizes': sizes,
    'backbones': args.backbones,
    'full_epochs': full_epochs(),
    'total_seconds': time.monotonic() - start,
    'process_seconds': seconds,
    'argv': argv if argv is not None else sys.argv[1:],
    'runs': runs,
    'io': io,
    'trials': long_search,
    'beam_modes': beam_modes,
  }
  os.makedirs(args.out, exist_ok=True)
  with open(os.path.join(args.out, 'results.json'), 'w') as f:
    json.dump(figures, f, indent=1)
  _write_report(args.out, figures)
  print(f'bench: wrote {args.out}/results.md and results.json ({figures["total_seconds"]:.0f}s)')


def summarize(result: dict, epochs: int) -> dict:
  """The ratios of one size and backbone."""
  images = result['images']
  fast, slow, base, floor = (
    result[k] for k in ('with_cache', 'without_cache', 'baseline', 'floor')
  )
  steps = fast['components']
  tuner = steps['Tuner']['seconds']
  search = fast['trial_seconds'] + (fast['feature_seconds'] or 0)
  upstream = sum(steps[c]['seconds'] for c in UPSTREAM)
  scale = 1.0 if result['full_search'] else epochs / SHORT_SEARCH_EPOCHS
  baseline_full = base['search_seconds'] * scale
  transformed = fast['transformed_examples']
  return {
    'images': images,
    'full_search': result['full_search'],
    'transform_images_per_second': images / steps['Transform']['seconds'],
    'transform_speedup': images / steps['Transform']['seconds'] / TRANSFORM_BEFORE,
    'transform_bytes_per_example': (transformed['train']['bytes'] + transformed['eval']['bytes'])
    / images,
    'baseline_search_seconds': base['search_seconds'],
    'baseline_full_search_seconds': baseline_full,
    'without_cache_tuner_seconds': slow['components']['Tuner']['seconds'],
    'without_cache_over_baseline': slow['components']['Tuner']['seconds'] / base['search_seconds'],
    'with_cache_tuner_seconds': tuner,
    'with_cache_feature_seconds': fast['feature_seconds'],
    'with_cache_trial_seconds': fast['trial_seconds'],
    'baseline_over_with_cache': baseline_full / tuner,
    'floor_seconds': floor['seconds'],
    'floor_backbone_seconds': floor['backbone_pass_seconds'],
    'with_cache_over_floor': tuner / floor['seconds'],
    'upstream_seconds': upstream,
    'tuner_startup_seconds': tuner - search,
    'search_seconds': search,
    'upstream_over_search': upstream / search,
    'peak_rss_mb': max(c['peak_rss_mb'] for c in steps.values()),
    'peak_rss_step': max(steps, key=lambda c: steps[c]['peak_rss_mb']),
    'checks_seconds': fast.get('checks_seconds'),
    'best_scores': {k: result[k]['best_score'] for k in ('with_cache', 'floor', 'baseline')},
  }


def _write_report(out: str, figures: dict) -> None:
  """Rewrites results.md, keeping what other benchmarks wrote there (<!-- x --> to <!-- /x -->)."""
  import re

  path = os.path.join(out, 'results.md')
  kept = ''
  if os.path.exists(path):
    sections = re.finditer(r'<!-- ([^/].*?) -->\n.*?<!-- /\1 -->\n', open(path).read(), re.S)
    kept = ''.join(m.group(0) for m in sections)
  with open(path, 'w') as f:
    f.write(report(figures) + ('\n' + kept if kept else ''))


def _mb(v):
  return f'{v / 1024:.2f} GB' if v >= 1024 else f'{v:.0f} MB'


def report(figures: dict) -> str:
  m, epochs = figures['machine'], figures['full_epochs']
  sizes, backbones = [str(s) for s in figures['sizes']], figures['backbones']
  summaries = {(n, b): summarize(figures['runs'][n][b], epochs) for n in sizes for b in backbones}
  before, after = figures['load_average_before'], figures['load_average_after']
  # The load after counts the benchmark's own last steps, so only the load before can
  # say whether other work was running when it started.
  idle = before[0] < 0.5
  lines = [
    '# Benchmark: the pipeline at real size',
    '',
    f'Command: `.venv/bin/python -m bench.run {" ".join(figures["argv"])}`'.replace(' `', ' `'),
    '',
    f'Machine: {m["cpu"]}, {m["cores"]} cores, {m["memory_gb"]} GB; {m["platform"]}; '
    f'Python {m["python"]}; ' + ', '.join(f'{k} {v}' for k, v in m['versions'].items()) + '.',
    'Load average (1, 5, 15 min) before: '
    f'{", ".join(f"{x:.2f}" for x in before)}; after: {", ".join(f"{x:.2f}" for x in after)} '
    "(the benchmark's own processes count in the load after).",
    ''
    if idle
    else f'**Not an idle machine**: other work shared the {m["cores"]} cores when the run '
    'started (see the load average before), so every time here is longer, and noisier, '
    'than on an idle machine; ratios of steps measured minutes apart can move either way.',
    '',
    f'Data: synthetic flower JPEGs (data/make_sample.py, 5 classes, ~100 px, upscaled to '
    f'{figures["image_size"]} px), two thirds train and one third eval, at '
    + ' and '.join(f'{int(n):,}' for n in sizes)
    + ' images. Backbones: efficientnet-lite0 (the default, ImageNet weights, 1280 features) '
    'and ResNet50V2 (random weights, 2048 features) saved as a SavedModel and passed as '
    '`--backbone PATH`. Search: Hyperband(max_epochs=3, factor=2), 8 trials and '
    f'{epochs} epochs, for the pipeline with the cache and the floor. Total benchmark time '
    f'{figures["total_seconds"] / 60:.0f} min.',
    '',
  ]
  short = [n for n in sizes if not figures['runs'][n][backbones[0]]['full_search']]
  if short:
    lines += [
      f'At {", ".join(f"{int(n):,}" for n in short)} images the plain script and the pipeline '
      'without the cache, which run every image through the backbone in every epoch, ran a '
      f'shorter search (random search: 1 trial of {SHORT_SEARCH_EPOCHS} epochs) to keep the '
      'benchmark under half an hour; their ratio to each other is measured on that search, '
      f"and the plain script's whole search is estimated as {epochs}/{SHORT_SEARCH_EPOCHS} "
      'times it (marked *est.*). That counts its per-trial start-up '
      f'{epochs / SHORT_SEARCH_EPOCHS:.1f} times instead of 8, so it leans high by a few '
      'seconds a trial.',
      '',
    ]
  largest = sizes[-1]
  lines += [f'## Targets at {int(largest):,} images', '']
  lines += ['| target | ' + ' | '.join(backbones) + ' |', '|---|' + '---|' * len(backbones)]
  for key, text, ok in TARGETS:
    cells = []
    for b in backbones:
      v = summaries[(largest, b)][key]
      cells.append(f'{_fmt(key, v)} ({"met" if ok(v) else "missed"})')
    lines.append(f'| {text} | ' + ' | '.join(cells) + ' |')
  trials = figures['trials']
  growth = trials['rss_growth']
  lines.append(
    f'| RSS growth from trial 5 to trial {trials["trials"]} ≤ 10% | '
    f'{100 * growth:+.1f}% ({"met" if growth <= 0.1 else "missed"}) |' + ' |' * (len(backbones) - 1)
  )
  lines += ['', '## Time, by size and backbone', '']
  header = '| | ' + ' | '.join(f'{int(n):,}, {b}' for n in sizes for b in backbones) + ' |'
  lines += [header, '|---|' + '---:|' * (len(sizes) * len(backbones))]

  def row(label, fn):
    return (
      f'| {label} | ' + ' | '.join(fn(summaries[(n, b)]) for n in sizes for b in backbones) + ' |'
    )

  lines += [
    row(
      'plain keras-tuner script, search (s)',
      lambda s: f'{s["baseline_search_seconds"]:.1f}' + ('' if s['full_search'] else ' (short)'),
    ),
    row(
      'pipeline without the cache, Tuner step (s)',
      lambda s: f'{s["without_cache_tuner_seconds"]:.1f}'
      + ('' if s['full_search'] else ' (short)'),
    ),
    row(
      'plain script, whole search (s)',
      lambda s: f'{s["baseline_full_search_seconds"]:.0f}'
      + ('' if s['full_search'] else ' *est.*'),
    ),
    row(
      'pipeline with the cache, Tuner step (s)', lambda s: f'{s["with_cache_tuner_seconds"]:.1f}'
    ),
    row('  of which backbone features (s)', lambda s: f'{s["with_cache_feature_seconds"]:.1f}'),
    row('  of which trials (s)', lambda s: f'{s["with_cache_trial_seconds"]:.1f}'),
    row('floor: one backbone pass + head search (s)', lambda s: f'{s["floor_seconds"]:.1f}'),
    row('  of which backbone pass (s)', lambda s: f'{s["floor_backbone_seconds"]:.1f}'),
    row('ImportExampleGen → Transform (s)', lambda s: f'{s["upstream_seconds"]:.1f}'),
    row('runner checks before the steps (s)', lambda s: _fmt('s', s['checks_seconds'])),
    row('no cache / plain script', lambda s: f'{s["without_cache_over_baseline"]:.2f}×'),
    row('plain script / Tuner step with cache', lambda s: f'{s["baseline_over_with_cache"]:.1f}×'),
    row('Tuner step with cache / floor', lambda s: f'{s["with_cache_over_floor"]:.2f}×'),
    row(
      'ImportExampleGen → Transform / search', lambda s: f'{100 * s["upstream_over_search"]:.0f}%'
    ),
    row('Transform, images/s', lambda s: f'{s["transform_images_per_second"]:.0f}'),
    row('bytes per transformed example', lambda s: f'{s["transform_bytes_per_example"]:,.0f}'),
    row('peak RSS of a step', lambda s: f'{_mb(s["peak_rss_mb"])} ({s["peak_rss_step"]})'),
  ]
  lines += [
    '',
    '"Search" is the Tuner step\'s backbone features plus its trials; the runner checks are '
    'the backbone load and the data check (every image decoded), which run before any step.',
    '',
    '## Every step of the pipeline with the cache',
    '',
    "Seconds, images per second (train + eval images over the step's time) and peak RSS "
    "(all steps run in one process, so a step's peak includes what earlier steps left).",
    '',
    header,
    '|---|' + '---:|' * (len(sizes) * len(backbones)),
  ]
  for step in figures['runs'][sizes[0]][backbones[0]]['with_cache']['components']:

    def cell(n, b, step=step):
      c = figures['runs'][n][b]['with_cache']['components'][step]
      rate = int(n) / c['seconds'] if c['seconds'] > 0.05 else None
      return (
        f'{c["seconds"]:.1f} s, ' + (f'{rate:,.0f}/s, ' if rate else '') + _mb(c['peak_rss_mb'])
      )

    lines.append(f'| {step} | ' + ' | '.join(cell(n, b) for n in sizes for b in backbones) + ' |')
  lines += _io_lines(figures['io'])
  lines += _beam_lines(figures['beam_modes'], largest)
  lines += _trial_lines(trials)
  lines += [
    '',
    '## Best val_accuracy (synthetic data: a check that the searches learn, not a result)',
    '',
    header,
    '|---|' + '---:|' * (len(sizes) * len(backbones)),
  ]
  for k in ('with_cache', 'floor', 'baseline'):
    lines.append(row(k.replace('_', ' '), lambda s, k=k: _fmt('score', s['best_scores'][k])))
  lines += ['', SCALING, '']
  return '\n'.join(lines)


def _fmt(key, v):
  if v is None:
    return '-'
  if key == 'transform_speedup':
    return f'{v:.1f}× ({v * TRANSFORM_BEFORE:.0f} images/s)'
  if key == 'transform_bytes_per_example':
    return f'{v / 1000:.0f} KB'
  if key == 'upstream_over_search':
    return f'{100 * v:.0f}%'
  if key == 'peak_rss_mb':
    return _mb(v)
  if key == 'score':
    return f'{v:.3f}'
  if key == 's':
    return f'{v:.1f}'
  return f'{v:.2f}×'


def _io_lines(io):
  lines = [
    '',
    '## Stored image formats',
    '',
    f'A plain tf.data decode + resize reads {io["tfdata_decode_resize_images_per_second"]:,.0f} '
    "images/s; the pipeline's transformed examples take "
    f'{io.get("transform_bytes_per_example_on_disk", 0):,.0f} bytes each on disk (uint8). '
    'Each candidate form of a resized image, written as Transform writes (GZIP TFRecord) and '
    "read back as the model's [0, 1] floats:",
    '',
    '| photos | format | bytes/example | write ms/image | read images/s | max pixel error |',
    '|---|---|---:|---:|---:|---:|',
  ]
  for photos, formats in io['formats'].items():
    what = f'real ({io.get("real_photos", "?")})' if photos == 'real' else 'synthetic'
    for name, f in formats.items():
      lines.append(
        f'| {what} | {name} | {f["bytes_per_example"]:,.0f} | {f["write_ms_per_image"]:.1f} | '
        f'{f["read_images_per_second"]:,.0f} | {f["max_abs_error"] * 255:.2f}/255 |'
      )
  return lines + [
    '',
    'uint8 (a serialized uint8 tensor) is what Transform stores: exact to half a step, the '
    'fastest to write and to read; PNG is smaller but slower both ways; JPEG is the smallest but '
    'moves pixels by far more than 1/255.',
  ]


def _beam_lines(modes, largest):
  steps = [c for c in UPSTREAM if c != 'ExampleValidator']  # Not upstream of Transform.
  lines = [
    '',
    f'## Beam workers, ImportExampleGen → Transform at {int(largest):,} images',
    '',
    '| Beam workers | ' + ' | '.join(steps) + ' | transformed data |',
    '|---|' + '---:|' * len(steps) + '---|',
  ]
  reference = modes['one']['digest']
  for mode in ('one', 'threads', 'processes'):
    cells = [
      f'{modes[mode][c]["seconds"]:.1f} s, {_mb(modes[mode][c]["peak_rss_mb"])}'
      if c in modes[mode]
      else '-'
      for c in steps
    ]
    same = 'same' if modes[mode]['digest'] == reference else 'DIFFERENT'
    lines.append(f'| {mode} | ' + ' | '.join(cells) + f' | {same} as one worker |')
  return lines + [
    '',
    '`threads` is the default below 10,000 records; in the threads row only Transform is '
    "from this run's pipeline with the cache. `processes` starts a TensorFlow worker per core "
    'in every Beam step.',
  ]


def _trial_lines(t):
  n = t['trials']
  per_trial = t['folder_bytes_without_pruning'] / n
  return [
    '',
    f'## {n} trials on cached features',
    '',
    f'Random search, {n} trials of {t["epochs_per_trial"]} epoch(s) on the head, '
    f'{t["examples"][0]:,} + {t["examples"][1]:,} cached {t["feature_dim"]}-feature examples '
    f'({t["features_from"]}); {t["search_seconds"]:.0f} s.',
    '',
    '| | value |',
    '|---|---:|',
    f'| RSS after trial 5 | {t["rss_mb_at_trial_5"]:.0f} MB |',
    f'| RSS after trial {n} | {t["rss_mb_at_last_trial"]:.0f} MB |',
    f'| growth | {100 * t["rss_growth"]:+.1f}% |',
    f'| written per trial (mostly its checkpoint) | {per_trial / 1e6:.2f} MB |',
    f'| search folder without pruning | {t["folder_bytes_without_pruning"] / 1e6:.1f} MB |',
    f"| search folder as kept (best trial's checkpoint only) | {t['folder_bytes'] / 1e6:.1f} MB |",
  ]


SCALING = """\
How the figures scale. With N images and a backbone pass of c seconds per image, the plain
script and the pipeline without the cache cost about E * N * c, where E is the epochs of the
whole search (17 for Hyperband(3, 2)); with the cache the Tuner step costs N * c once plus the
head's trials, which hardly depend on N (a second or two per trial of Keras and keras-tuner
work: building, compiling, tracing). So the speed-up of the cache grows with N towards E, and
the steps before the Tuner (decode, resize, write 150 KB per image) grow with N like the
backbone pass, which they then stay a fixed fraction of: a cheap backbone (EfficientNet-Lite0)
makes them a larger share than an expensive one (ResNet50V2)."""


if __name__ == '__main__':
  main()
