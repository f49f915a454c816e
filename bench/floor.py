"""The floor of a frozen-backbone search: one backbone pass over train and eval, plus the head's
search.

Nothing can tune the head with less work: every image must go through the
backbone once, and the head trains for the trials and epochs Hyperband plans
(as many steps an epoch as the pipeline's head does).
Run by bench/run.py.
"""

import math
import os

from bench import common


def main(argv=None):
  args = common.step_parser(__doc__).parse_args(argv)
  import keras
  import numpy as np
  import tensorflow as tf

  from modules.backbones import backbone
  from modules.model import model
  from modules.search import search_space
  from modules.training import training_data

  keras.utils.set_random_seed(args.seed)
  extractor = tf.saved_model.load(backbone.saved_model_dir(args.backbone))
  call = tf.function(extractor.serve)
  arrays = {}
  with common.Timer() as backbone_pass:
    for split in ('train', 'validation'):
      data = common.decoded_dataset(common.raw_files(args.data_root, split), args.image_size)
      features, labels = [], []
      for images, label in data.batch(args.batch_size).prefetch(tf.data.AUTOTUNE):
        features.append(call(images).numpy())
        labels.append(label.numpy())
      arrays[split] = np.concatenate(features), np.concatenate(labels)

  def batches(split, shuffle):
    data = tf.data.Dataset.from_tensor_slices(arrays[split])
    if shuffle:
      data = data.shuffle(len(arrays[split][1]), seed=args.seed).repeat()
    return data.batch(args.batch_size).prefetch(tf.data.AUTOTUNE)

  # The head trains as many steps as in the pipeline (training_data): at least
  # MIN_STEPS_PER_EPOCH batches an epoch, so the floor is of the same search.
  steps = max(
    math.ceil(len(arrays['train'][1]) / args.batch_size), training_data.MIN_STEPS_PER_EPOCH
  )

  tuner = common.search(
    lambda hp: model.build_head(hp, 5, arrays['train'][0].shape[-1]), args, 'floor'
  )
  with common.Timer() as head:
    tuner.search(
      batches('train', True),
      validation_data=batches('validation', False),
      steps_per_epoch=steps,
      epochs=args.max_epochs,
      verbose=0,
      callbacks=[common.early_stopping()],
    )
  best = tuner.oracle.get_best_trials(1)[0]
  images = sum(len(a[1]) for a in arrays.values())
  common.write(
    args.json,
    {
      'backbone_pass_seconds': backbone_pass.seconds,
      'head_search_seconds': head.seconds,
      'seconds': backbone_pass.seconds + head.seconds,
      'images': images,
      'backbone_images_per_second': images / backbone_pass.seconds,
      'best_score': best.score,
      'best_hyperparameters': search_space.public_values(best.hyperparameters.values),
    },
  )


if __name__ == '__main__':
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
  main()
