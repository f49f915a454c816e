"""What the Tuner's trials and the Trainer fit on, and the model builder that matches it.

With a frozen SavedModel backbone that is the cached backbone features and a
head-only builder (modules/feature_cache.py); otherwise the transformed images
read by the shared `input_fn` and the full model. `tuner_fn` and `run_fn` both
call `prepare`, so the two components always train the same way.
"""

import dataclasses
import functools
import math
from typing import Callable, Optional

import keras
import keras_tuner
import tensorflow as tf
import tensorflow_transform as tft
from tfx import v1 as tfx

from modules import feature_cache, model
from modules.inputs import input_fn
from modules.module_config import ModuleConfig

# On cached features an epoch is at least this many batches (the features
# repeat): a head on 40 photos would otherwise get 2 optimizer steps an epoch,
# too few for SGD or small learning rates to move at all, so a search would
# rank its trials by how few steps they had. Each step costs about a millisecond.
MIN_HEAD_STEPS_PER_EPOCH = 50


@dataclasses.dataclass(frozen=True)
class TrainingData:
  train: tf.data.Dataset
  eval: tf.data.Dataset
  build: Callable[[keras_tuner.HyperParameters], keras.Model]  # The hypermodel.
  cached_features: bool  # True: `build` makes a head that takes backbone features.
  # Batches per epoch for `fit` (train repeats); None: one pass over `train`.
  steps_per_epoch: Optional[int] = None


def prepare(
  fn_args: tfx.components.FnArgs,
  config: ModuleConfig,
  tf_transform_output: tft.TFTransformOutput,
  num_classes: int,
  *,
  repeat: bool = False,
) -> TrainingData:
  """Datasets and builder for `config`; `repeat` repeats the training data (fixed step budgets)."""
  if feature_cache.applies(config):
    # A frozen backbone: train only the head, on features computed once and
    # shared by the Tuner's trials and the Trainer.
    train, evaluation = (
      feature_cache.features_for(fn_args, config, tf_transform_output, split, files)
      for split, files in (('train', fn_args.train_files), ('eval', fn_args.eval_files))
    )
    read = functools.partial(feature_cache.dataset, batch_size=config.batch_size, seed=config.seed)
    batches = math.ceil(len(train[1]) / config.batch_size)
    return TrainingData(
      train=read(*train, repeat=True),
      eval=read(*evaluation, shuffle=False),
      build=functools.partial(
        model.build_head, num_classes=num_classes, feature_dim=train[0].shape[-1]
      ),
      cached_features=True,
      steps_per_epoch=max(batches, MIN_HEAD_STEPS_PER_EPOCH),
    )
  read = functools.partial(
    input_fn,
    data_accessor=fn_args.data_accessor,
    tf_transform_output=tf_transform_output,
    batch_size=config.batch_size,
    image_size=config.image_size,
    seed=config.seed,
  )
  return TrainingData(
    train=read(fn_args.train_files, repeat=repeat),
    eval=read(fn_args.eval_files, shuffle=False),
    build=functools.partial(model.build_model, config=config, num_classes=num_classes),
    cached_features=False,
  )
