"""Benchmark: augmentation with a frozen backbone, cached augmented copies against the alternatives.

Augmented images have other backbone features than the photos, so the
feature cache cannot serve them as they are. Two ways out: fall back to
running the backbone on freshly augmented images in every step, or cache the
features of a fixed number K of augmented copies of each training photo and
let the head's steps draw from them (what the pipeline does,
`--augment-copies K`). This measures both on the real photos (default: the
shard in ../shared/flowers) by stratified k-fold, with the pipeline's own
pieces: decode and resize as Transform does, the efficientnet-lite0 backbone,
the augmentation layers (flip + rotation + zoom), the built-in head at the
search space defaults, and the pipeline's epochs (at least 50 steps each).

Per setting: accuracy over all folds and head seeds, and the one-time cost of
the backbone passes. The fallback needs a backbone pass for every image of
every step: its cost per epoch is timed on one fold (`--fallback-epochs`);
16 cached copies (each photo seen in 16 random variants) stand in for its
accuracy. Writes bench/results/augmentation.json and .md.

  .venv/bin/python -m bench.augmentation [--data-root ../shared/flowers] [--folds 5]
"""

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np

from bench import common
from bench.accuracy import read_records, stratified_folds
from bench.parallel_trials import machine

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument('--data-root', default=os.path.join(os.path.dirname(ROOT), 'shared', 'flowers'))
  p.add_argument('--folds', type=int, default=5)
  p.add_argument('--image-size', type=int, default=224)
  p.add_argument('--epochs', type=int, default=8, help='head epochs (the Trainer default)')
  p.add_argument('--seeds', type=int, default=2, help='head seeds per fold and setting')
  p.add_argument('--copies', default='2,4,8,16', help='K values for the cached copies')
  p.add_argument('--fallback-epochs', type=int, default=1, help='epochs timed for the fallback')
  p.add_argument(
    '--work',
    default=os.path.join(tempfile.gettempdir(), 'augmentation-bench'),
    help='where finished folds are kept, so a rerun after an interruption resumes',
  )
  args = p.parse_args(argv)
  os.makedirs(args.work, exist_ok=True)

  import keras
  import tensorflow as tf

  from modules.backbones import backbone
  from modules.model import model
  from modules.preprocessing import decode_and_resize
  from modules.search import search_space
  from modules.training import feature_cache, training_data
  from modules.training.augmentation import Augmentation

  augment = Augmentation(flip=True, rotation=True, zoom=True)
  batch = 32
  records = read_records(args.data_root)
  fold_of = np.array(stratified_folds(records, args.folds))
  labels = np.array([r[1] for r in records])
  example_spec = {'image/encoded': tf.io.FixedLenFeature([], tf.string)}
  encoded = tf.constant(
    [tf.io.parse_single_example(r[0], example_spec)['image/encoded'].numpy() for r in records]
  )
  images = decode_and_resize(encoded, args.image_size).numpy()
  layer = backbone.build_backbone('efficientnet-lite0', fine_tune=False)
  extract = tf.function(lambda x: layer(x, training=False))
  extract(images[:2])  # Trace once, outside the timings.

  def features_of(batches) -> np.ndarray:
    return np.concatenate([extract(x).numpy() for x, _ in batches])

  start = time.monotonic()
  plain = features_of(tf.data.Dataset.from_tensor_slices((images, labels)).batch(batch))
  plain_seconds = time.monotonic() - start
  copies = [int(k) for k in args.copies.split(',')]

  def head_accuracy(train_x, train_y, held_x, held_y, seed, n_photos) -> float:
    keras.utils.set_random_seed(seed)
    head = model.build_head(search_space.builtin().hyperparameters(), 5, plain.shape[-1])
    steps = max(int(np.ceil(n_photos / batch)), training_data.MIN_STEPS_PER_EPOCH)
    head.fit(
      feature_cache.dataset(train_x, train_y, batch, repeat=True, seed=seed),
      epochs=args.epochs,
      steps_per_epoch=steps,
      verbose=0,
    )
    predicted = head.predict(held_x, verbose=0).argmax(axis=-1)
    keras.backend.clear_session()
    return float((predicted == held_y).mean())

  settings = {'none': {'correct': [], 'backbone_seconds': 0.0}}
  for k in copies:
    settings[f'{k} cached copies'] = {'correct': [], 'backbone_seconds': 0.0}
  for fold in range(args.folds):
    done = os.path.join(args.work, f'fold{fold}-of-{args.folds}-seeds{args.seeds}.json')
    if os.path.exists(done):
      with open(done) as f:
        for name, part in json.load(f).items():
          settings[name]['correct'] += part['correct']
          settings[name]['backbone_seconds'] += part['backbone_seconds']
      continue
    before = {name: (len(v['correct']), v['backbone_seconds']) for name, v in settings.items()}
    train, held = fold_of != fold, fold_of == fold
    n = int(train.sum())
    fold_copies = {}
    for k in copies:
      start = time.monotonic()
      parts = []
      for copy in range(k):
        batches = tf.data.Dataset.from_tensor_slices((images[train], labels[train])).batch(batch)
        parts.append(features_of(augment.apply(batches, seed=1000 * fold + copy)))
      fold_copies[k] = np.concatenate(parts)
      settings[f'{k} cached copies']['backbone_seconds'] += time.monotonic() - start
    for seed in range(args.seeds):
      settings['none']['correct'].append(
        head_accuracy(plain[train], labels[train], plain[held], labels[held], seed, n)
      )
      for k in copies:
        settings[f'{k} cached copies']['correct'].append(
          head_accuracy(
            fold_copies[k], np.tile(labels[train], k), plain[held], labels[held], seed, n
          )
        )
    so_far = ', '.join(f'{name}: {np.mean(v["correct"]):.3f}' for name, v in settings.items())
    print(f'fold {fold}: {so_far}', flush=True)
    with open(done + '.tmp', 'w') as f:
      json.dump(
        {
          name: {
            'correct': v['correct'][before[name][0] :],
            'backbone_seconds': v['backbone_seconds'] - before[name][1],
          }
          for name, v in settings.items()
        },
        f,
      )
    os.rename(done + '.tmp', done)
  # The plain features of a fold's training photos: one pass over them.
  settings['none']['backbone_seconds'] = plain_seconds * (args.folds - 1)

  # The fallback: a backbone pass over freshly augmented images in every step. Its cost
  # per epoch, on one fold; as many epochs as the others would take hours here.
  train = fold_of != 0
  keras.utils.set_random_seed(0)
  head = model.build_head(search_space.builtin().hyperparameters(), 5, plain.shape[-1])
  fresh = iter(
    augment.apply(
      tf.data.Dataset.from_tensor_slices((images[train], labels[train]))
      .shuffle(int(train.sum()), seed=0)
      .repeat()
      .batch(batch),
      seed=0,
    )
  )
  epoch_seconds = []
  for _ in range(args.fallback_epochs):
    start = time.monotonic()
    for _ in range(training_data.MIN_STEPS_PER_EPOCH):
      x, y = next(fresh)
      head.train_on_batch(extract(x), y)
    epoch_seconds.append(time.monotonic() - start)
  keras.backend.clear_session()

  # One epoch of the head on cached features (50 steps), for the cost side.
  start = time.monotonic()
  head_accuracy(plain, labels, plain[:4], labels[:4], 0, len(labels))
  cached_epoch = (time.monotonic() - start) / args.epochs

  per_image = plain_seconds / len(labels)
  result = {
    'data_root': args.data_root,
    'photos': len(records),
    'folds': args.folds,
    'image_size': args.image_size,
    'epochs': args.epochs,
    'seeds': args.seeds,
    'augmentation': augment.describe(),
    'backbone_seconds_per_image': round(per_image, 4),
    'cached_epoch_seconds': round(cached_epoch, 2),
    'fallback_epoch_seconds': round(float(np.mean(epoch_seconds)), 2),
    'fallback_epochs': args.fallback_epochs,
    'settings': {
      name: {
        'accuracy': round(float(np.mean(v['correct'])), 3),
        'accuracy_sd_over_seeds_and_folds': round(float(np.std(v['correct'])), 3),
        'backbone_seconds_per_fold': round(v['backbone_seconds'] / args.folds, 1),
      }
      for name, v in settings.items()
    },
    'fallback_seconds_for_the_same_epochs_per_fold': round(
      float(np.mean(epoch_seconds)) * args.epochs
    ),
    'machine': machine(),
    'load_after': [round(x, 2) for x in os.getloadavg()],
  }
  common.save_results('augmentation', result, markdown(result))
  return 0


def markdown(r: dict) -> str:
  m = r['machine']
  lines = [
    '# Augmentation with a frozen backbone: cached augmented copies or the fallback',
    '',
    f'{r["photos"]} real photos ({r["data_root"]}), stratified {r["folds"]}-fold; '
    f'efficientnet-lite0 at {r["image_size"]} px; augmentation {r["augmentation"]}; the '
    f'built-in head at the search space defaults, {r["epochs"]} epochs of at least 50 steps '
    f'(the Trainer default), {r["seeds"]} head seeds per fold.',
    '',
    '| setting | accuracy (all folds and seeds) | sd | backbone seconds per fold (once) |',
    '|---|---:|---:|---:|',
  ]
  for name, s in r['settings'].items():
    lines.append(
      f'| {name} | {s["accuracy"]:.3f} | {s["accuracy_sd_over_seeds_and_folds"]:.3f} '
      f'| {s["backbone_seconds_per_fold"]} |'
    )
  lines += [
    '',
    f'One epoch of the head (50 steps of 32): {r["cached_epoch_seconds"]} s on cached features '
    f'(plain or copies); {r["fallback_epoch_seconds"]} s with the fallback (the backbone on '
    f'freshly augmented images in every step), so its {r["epochs"]} epochs would take about '
    f'{r["fallback_seconds_for_the_same_epochs_per_fold"]} s per fold and trial; its accuracy '
    'at that many steps was not measured (hours here). One backbone pass: '
    f'{r["backbone_seconds_per_image"] * 1000:.0f} ms per image.',
    '',
    f'Machine: {m["cpus"]} CPUs ({m["cpu_model"]}), TensorFlow {m["tensorflow"]}, Keras '
    f'{m["keras"]}; load average after: {r["load_after"][0]} (the CPUs are shared).',
    '',
  ]
  return '\n'.join(lines)


if __name__ == '__main__':
  sys.exit(main())
