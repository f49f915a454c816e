"""The classic plain keras-tuner script the pipeline is measured against.

tf.data reads the flower TFRecords and decodes + resizes each image, the frozen
backbone sits inside the model, and `Hyperband(max_epochs=3, factor=2)` searches
the project's search space (or `--tuner random`: a shorter search of the same
kind, for data too large to run the whole search in the benchmark): every epoch
of every trial runs every image through the backbone again. Run by
bench/run.py; usable alone with the same flags.
"""

import os

from bench import common


def main(argv=None):
  args = common.step_parser(__doc__).parse_args(argv)
  import keras
  import tensorflow as tf

  from modules import search_space  # The same space as the pipeline's, not a copy of it.
  from modules.backbones import backbone as backbones

  class Backbone(keras.layers.Layer):
    """The SavedModel feature extractor, frozen (its variables are not Keras weights)."""

    def __init__(self, path, **kwargs):
      super().__init__(**kwargs)
      self.loaded = tf.saved_model.load(path)

    def call(self, images):
      return self.loaded.serve(images)

  keras.utils.set_random_seed(args.seed)
  size = args.image_size
  with common.Timer() as setup:
    # A SavedModel folder, or the pipeline's converted efficientnet-lite0.
    backbone = Backbone(backbones.saved_model_dir(args.backbone))
    num_classes = 5

  def build_model(hp):  # The space comes declared (common.search): the pipeline's own.
    inputs = keras.Input((size, size, 3))
    x = backbone(inputs)
    x = keras.layers.Dense(hp.get('units'), activation=hp.get('dense_activation'))(x)
    outputs = keras.layers.Dense(num_classes, activation='softmax')(x)
    model = keras.Model(inputs, outputs)
    optimizer = {'adam': keras.optimizers.Adam, 'sgd': keras.optimizers.SGD}[hp.get('optimizer')]
    model.compile(
      optimizer(learning_rate=hp.get('learning_rate')),
      loss='sparse_categorical_crossentropy',
      metrics=['accuracy'],
    )
    return model

  train = (
    common.decoded_dataset(common.raw_files(args.data_root, 'train'), size)
    .shuffle(1000, seed=args.seed)
    .batch(args.batch_size)
    .prefetch(tf.data.AUTOTUNE)
  )
  evaluation = (
    common.decoded_dataset(common.raw_files(args.data_root, 'validation'), size)
    .batch(args.batch_size)
    .prefetch(tf.data.AUTOTUNE)
  )
  tuner = common.search(build_model, args, 'baseline')
  with common.Timer() as search:
    tuner.search(
      train,
      validation_data=evaluation,
      epochs=args.max_epochs,  # Hyperband sets each trial's own.
      verbose=0,
      callbacks=[common.early_stopping()],
    )
  trials = tuner.oracle.trials.values()
  best = tuner.oracle.get_best_trials(1)[0]
  common.write(
    args.json,
    {
      'search_seconds': search.seconds,
      'setup_seconds': setup.seconds,
      'trials': len(trials),
      'epochs': sum(
        t.hyperparameters.values.get('tuner/epochs', 0)
        - t.hyperparameters.values.get('tuner/initial_epoch', 0)
        for t in trials
      ),
      'best_score': best.score,
      'best_hyperparameters': search_space.public_values(best.hyperparameters.values),
    },
  )


if __name__ == '__main__':
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
  main()
