"""Scale in trials: a long random search on cached features, its memory and disk trial by trial.

Runs the pipeline's own tuner (modules.tuner.make_tuner: keras-tuner's
RandomSearch with the progress, budget and checkpoint hooks) for --trials
trials of the head on backbone features, as the Tuner does with the feature
cache: the features of a pipeline run's cache entries (--features), or random
ones. After each trial it records the process's resident memory and the search
folder's bytes. Run by bench/run.py.
"""

import argparse
import math
import os

from bench import common


def _folder_bytes(folder: str) -> int:
  return sum(
    os.path.getsize(os.path.join(root, name))
    for root, _, names in os.walk(folder)
    for name in names
  )


def _arrays(paths, dim, seed):
  """(train, eval) (features, labels): from feature cache entries, or random."""
  import json

  import numpy as np

  if paths:
    splits = {}
    for path in paths:
      with open(path[: -len('.npz')] + '.json') as f:  # What the entry was made of.
        split = json.load(f)['split']
      arrays = np.load(path)
      splits[split] = arrays['features'], arrays['labels']
    return splits['train'], splits['eval']
  rng = np.random.default_rng(seed)
  return [
    (rng.normal(size=(n, dim)).astype('float32'), rng.integers(0, 5, size=n)) for n in (2445, 1225)
  ]


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__)
  p.add_argument('--features', nargs='*', default=[], help='train and eval .npz cache entries')
  p.add_argument('--trials', type=int, default=50)
  p.add_argument('--epochs', type=int, default=1, help='epochs per trial')
  p.add_argument('--batch-size', type=int, default=32)
  p.add_argument('--seed', type=int, default=42)
  p.add_argument('--work', required=True)
  p.add_argument('--json', required=True)
  args = p.parse_args(argv)
  import psutil

  from modules import tuner as tuner_module
  from modules.model import model
  from modules.module_config import ModuleConfig
  from modules.search import search_space
  from modules.training import feature_cache, training_data

  train, evaluation = _arrays(args.features, 1280, args.seed)
  config = ModuleConfig(
    tuner='random', max_trials=args.trials, max_epochs=args.epochs, seed=args.seed
  )
  folder = os.path.join(args.work, 'search')
  tuner = tuner_module.make_tuner(
    config,
    lambda hp: model.build_head(hp, num_classes=5, feature_dim=train[0].shape[-1]),
    directory=folder,
    space=search_space.builtin(),
  )
  process, after = psutil.Process(), []
  end = tuner.on_trial_end

  def on_trial_end(trial):
    end(trial)
    after.append(
      {'rss_mb': process.memory_info().rss / 2**20, 'folder_bytes': _folder_bytes(folder)}
    )

  tuner.on_trial_end = on_trial_end
  steps = max(math.ceil(len(train[1]) / args.batch_size), training_data.MIN_STEPS_PER_EPOCH)
  with common.Timer() as search:
    tuner.search(
      feature_cache.dataset(*train, args.batch_size, repeat=True, seed=args.seed),
      validation_data=feature_cache.dataset(*evaluation, args.batch_size, shuffle=False),
      steps_per_epoch=steps,
      epochs=args.epochs,
      verbose=0,
    )
  kept = _folder_bytes(folder)
  fifth, last = after[min(4, len(after) - 1)]['rss_mb'], after[-1]['rss_mb']
  common.write(
    args.json,
    {
      'trials': len(after),
      'epochs_per_trial': args.epochs,
      'examples': [len(train[1]), len(evaluation[1])],
      'feature_dim': int(train[0].shape[-1]),
      'features_from': 'cache' if args.features else 'random',
      'search_seconds': search.seconds,
      'per_trial': after,
      'rss_mb_at_trial_5': fifth,
      'rss_mb_at_last_trial': last,
      'rss_growth': last / fifth - 1,
      'folder_bytes': kept,
      'checkpoint_bytes_deleted': tuner.checkpoint_bytes_freed,
      'folder_bytes_without_pruning': kept + tuner.checkpoint_bytes_freed,
    },
  )


if __name__ == '__main__':
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
  main()
