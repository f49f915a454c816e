"""Benchmark: eval accuracy of the whole pipeline on real photos, by stratified k-fold.

Splits the real flower photos (default: the shard in ../shared/flowers, 10 per
class) into k stratified folds; for each fold writes a train and a validation
shard in the published layout and runs `run_local.py` (Transform -> Tuner ->
Trainer -> Evaluator) once per setting, all settings of a fold sharing one
pipeline root (so Transform and the feature cache are reused). Settings:
`efficientnet-lite0` tuned (Hyperband, the default run), `efficientnet-lite0`
with the search space defaults (`--no-tune`), and the small CNN tuned. Beside
them, a plain logistic regression on the same folds' EfficientNet-Lite0
features (the same decode and resize as Transform). Writes
bench/results/accuracy.json and .md, and the table into bench/results.md.

  .venv/bin/python -m bench.accuracy [--data-root ../shared/flowers] [--folds 5]
"""

import argparse
import glob
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time

import numpy as np

from bench import common
from bench.parallel_trials import machine

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARD = 'image_classification_builder-{split}.tfrecord-00000-of-00001'
SETTINGS = {
  'efficientnet-lite0, tuned': ['--backbone', 'efficientnet-lite0'],
  'efficientnet-lite0, defaults (--no-tune)': ['--backbone', 'efficientnet-lite0', '--no-tune'],
  'cnn, tuned': ['--backbone', 'cnn'],
}
# 'eval accuracy' here: these folds have no test shards (bench/optimism.py's do).
ACCURACY_LINE = re.compile(r'^(?:eval|test) accuracy: ([\d.]+)', re.M)
SECTION = ('<!-- accuracy on real photos -->', '<!-- /accuracy on real photos -->')
DEFAULT_DATA_ROOT = os.path.join(os.path.dirname(ROOT), 'shared', 'flowers')


def read_records(data_root: str) -> list:
  """(serialized example, label, file name) of every record in the folder's TFRecords."""
  import tensorflow as tf

  files = sorted(glob.glob(os.path.join(data_root, '*.tfrecord*')))
  if not files:
    raise SystemExit(f'--data-root {data_root}: no *.tfrecord* files.')
  records = []
  for record in tf.data.TFRecordDataset(files):
    example = tf.train.Example.FromString(record.numpy())
    feature = example.features.feature
    records.append(
      (
        record.numpy(),
        feature['image/class/label'].int64_list.value[0],
        feature['image/filename'].bytes_list.value[0].decode(),
      )
    )
  return records


def stratified_folds(records: list, folds: int, seed: int = 0) -> list:
  """Fold index of each record: within each class, records ordered by a hash of their name.

  Another `seed` hashes `seed:name`: another stratified split of the same records.
  """
  assignment = [0] * len(records)
  for label in sorted({r[1] for r in records}):
    members = sorted(
      (i for i, r in enumerate(records) if r[1] == label),
      key=lambda i: hashlib.sha256(
        (f'{seed}:{records[i][2]}' if seed else records[i][2]).encode()
      ).hexdigest(),
    )
    for rank, i in enumerate(members):
      assignment[i] = rank % folds
  return assignment


def write_fold(records, assignment, fold: int, folder: str) -> None:
  import tensorflow as tf

  os.makedirs(folder, exist_ok=True)
  for split, keep in (('train', lambda f: f != fold), ('validation', lambda f: f == fold)):
    with tf.io.TFRecordWriter(os.path.join(folder, SHARD.format(split=split))) as writer:
      for record, f in zip(records, assignment):
        if keep(f):
          writer.write(record[0])


def run_pipeline(data: str, root: str, flags: list, log: str) -> dict:
  command = [
    sys.executable,
    'run_local.py',
    '--data-root',
    data,
    '--pipeline-root',
    root,
    '--accuracy-threshold',
    '0',
    *flags,
  ]
  start = time.monotonic()
  done = subprocess.run(
    command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
  )
  with open(log, 'w') as f:
    f.write(done.stdout)
  if done.returncode:
    raise SystemExit(f'{" ".join(command)} failed (log: {log}):\n{done.stdout[-2000:]}')
  accuracy = ACCURACY_LINE.search(done.stdout)
  if not accuracy:
    raise SystemExit(f'no accuracy line in {log}')
  result = {'accuracy': float(accuracy.group(1)), 'seconds': round(time.monotonic() - start, 1)}
  if '--no-tune' not in flags:
    result['trial_scores'] = _trial_scores(root)
  return result


def _trial_scores(root: str) -> list:
  reports = glob.glob(os.path.join(root, 'tuning', '*', '*', 'report', 'trials.json'))
  newest = max(reports, key=os.path.getmtime)
  with open(newest) as f:
    return [row['score'] for row in json.load(f) if row['score'] is not None]


def distinct_trials(scores: list, eval_size: int) -> int:
  """Trials scoring more than one eval photo below the best: what tuning can tell apart."""
  best = max(scores)
  return sum(1 for s in scores if best - s > 1.0 / eval_size + 1e-6)


def logistic_regression(records, assignment, folds: int, image_size: int) -> list:
  """Accuracy per fold of a logistic regression on EfficientNet-Lite0 features."""
  import tensorflow as tf
  from sklearn.linear_model import LogisticRegression

  from modules.backbones import efficientnet_lite
  from modules.preprocessing import decode_and_resize

  model = efficientnet_lite.pretrained()
  images = decode_and_resize(tf.constant([r[0] for r in _encoded(records)]), image_size)
  features = model.predict(images, batch_size=16, verbose=0)
  labels = np.array([r[1] for r in records])
  fold_of = np.array(assignment)
  scores = []
  for fold in range(folds):
    train, held = fold_of != fold, fold_of == fold
    classifier = LogisticRegression(max_iter=5000).fit(features[train], labels[train])
    scores.append(float(classifier.score(features[held], labels[held])))
  return scores


def _encoded(records):
  import tensorflow as tf

  for record, label, _ in records:
    example = tf.train.Example.FromString(record)
    yield example.features.feature['image/encoded'].bytes_list.value[0], label


def summarize(per_setting: dict, eval_size: int) -> dict:
  rows = {}
  for name, folds in per_setting.items():
    accuracies = [f['accuracy'] for f in folds]
    row = {
      'accuracies': accuracies,
      'mean': float(np.mean(accuracies)),
      'std': float(np.std(accuracies)),
    }
    if 'trial_scores' in folds[0]:
      row['distinct_trials'] = [distinct_trials(f['trial_scores'], eval_size) for f in folds]
      row['trials'] = [len(f['trial_scores']) for f in folds]
    if 'seconds' in folds[0]:
      row['seconds'] = [f['seconds'] for f in folds]
    rows[name] = row
  return rows


def markdown(result: dict) -> str:
  k, n = result['folds'], result['photos']
  lines = [
    f'## Accuracy on real photos: {k}-fold cross-validation',
    '',
    f'Data: {n} real flower photos ({result["data_root"]}), stratified into {k} folds: each '
    f'fold trains on {n - result["eval_size"]} and evaluates on the other {result["eval_size"]}'
    ' (eval accuracy from the Evaluator, on raw JPEGs through the exported model). '
    f'{result["image_size"]} px; default search (Hyperband, max_epochs 4, factor 3, 10 trials) '
    f'and Trainer (8 epochs). Total time {result["seconds"]:.0f}s (1-minute load average '
    f'{result["load_average"][0]:.1f} before, {result["load_average"][1]:.1f} after: the times '
    'depend on what else ran, the accuracies do not).',
    '',
    '| setting | mean eval accuracy | std | per fold | trials > 1 photo below the best |',
    '|---|---:|---:|---|---|',
  ]
  for name, row in result['rows'].items():
    per_fold = ', '.join(f'{a:.2f}' for a in row['accuracies'])
    distinct = (
      '-'
      if 'distinct_trials' not in row
      else ', '.join(f'{d}/{t}' for d, t in zip(row['distinct_trials'], row['trials']))
    )
    lines.append(f'| {name} | {row["mean"]:.3f} | {row["std"]:.3f} | {per_fold} | {distinct} |')
  m = result['machine']
  lines += [
    '',
    f'Machine: {m["cpus"]} CPUs ({m["cpu_model"]}), Python {m["python"]}; '
    f'TensorFlow {m["tensorflow"]}, Keras {m["keras"]}, keras-tuner {m["keras-tuner"]}, '
    f'TFX {m["tfx"]}. Command: `.venv/bin/python -m bench.accuracy`.',
  ]
  return '\n'.join(lines) + '\n'


def into_results_md(text: str, markers=SECTION) -> None:
  """Puts `text` into bench/results.md between the `markers` comments (replacing what was there)."""
  start, end = markers
  path = os.path.join(ROOT, 'bench', 'results.md')
  current = open(path).read() if os.path.exists(path) else ''
  section = f'{start}\n{text}{end}\n'
  if start in current:
    head, rest = current.split(start, 1)
    current = head + section + rest.split(end, 1)[1].lstrip('\n')
  else:
    current = current.rstrip('\n') + '\n\n' + section
  with open(path, 'w') as f:
    f.write(current)


def publish(name: str, result: dict, markdown, markers, start: float) -> None:
  """`result` with the machine and the time since `start`, saved as bench/results/<name>.*,
  and its `markdown` text put into bench/results.md between `markers`."""
  result = {**result, 'machine': machine(), 'seconds': time.monotonic() - start}
  text = markdown(result)
  common.save_results(name, result, text)
  into_results_md(text, markers)


def run_folds(records, assignment, settings: dict, work: str, flags: list, folds: int, run=None):
  """{setting: [result per fold]}: each setting's run_local.py flags (plus `flags`) on each of
  the first `folds` folds, the settings of a fold sharing one pipeline root under `work`.

  `run(data, root, flags, log)` runs one (default: run_pipeline)."""
  run = run or run_pipeline
  total = max(assignment) + 1
  per_setting = {name: [] for name in settings}
  for fold in range(folds):
    data = os.path.join(work, f'fold-{fold}', 'data')
    write_fold(records, assignment, fold, data)
    for i, (name, own) in enumerate(settings.items()):
      log = os.path.join(work, f'fold-{fold}', f'setting-{i}.log')
      result = run(data, os.path.join(work, f'fold-{fold}', 'root'), [*own, *flags], log)
      per_setting[name].append(result)
      print(
        f'fold {fold + 1}/{total}: {name}: eval accuracy {result["accuracy"]:.3f} '
        f'({result["seconds"]:.0f}s)',
        flush=True,
      )
  return per_setting


def main(argv=None) -> None:
  p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  p.add_argument('--data-root', default=DEFAULT_DATA_ROOT)
  p.add_argument('--folds', type=int, default=5)
  p.add_argument('--image-size', type=int, default=224)
  p.add_argument('--work', default=None, help='scratch folder (default: a temporary one)')
  p.add_argument('--settings', nargs='*', default=list(SETTINGS), choices=list(SETTINGS))
  args = p.parse_args(argv)
  start, load_before = time.monotonic(), os.getloadavg()[0]
  work = args.work or tempfile.mkdtemp(prefix='flower-accuracy-')
  records = read_records(args.data_root)
  assignment = stratified_folds(records, args.folds)
  settings = {name: SETTINGS[name] for name in args.settings}
  per_setting = run_folds(
    records, assignment, settings, work, ['--image-size', str(args.image_size)], args.folds
  )
  logistic = logistic_regression(records, assignment, args.folds, args.image_size)
  print(f'logistic regression on efficientnet-lite0 features: {np.mean(logistic):.3f}', flush=True)
  eval_size = len(records) // args.folds
  rows = summarize(per_setting, eval_size)
  rows['logistic regression on efficientnet-lite0 features (no pipeline)'] = {
    'accuracies': logistic,
    'mean': float(np.mean(logistic)),
    'std': float(np.std(logistic)),
  }
  result = {
    'data_root': os.path.relpath(os.path.abspath(args.data_root), ROOT),
    'photos': len(records),
    'folds': args.folds,
    'eval_size': eval_size,
    'image_size': args.image_size,
    'rows': rows,
    'per_setting': per_setting,
    'machine': machine(),
    'seconds': time.monotonic() - start,
    'load_average': [load_before, os.getloadavg()[0]],
  }
  text = markdown(result)
  common.save_results('accuracy', result, text)
  into_results_md(text)


if __name__ == '__main__':
  main()
