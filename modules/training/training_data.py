"""What the Tuner's trials and the Trainer fit on: batches for any batch size and augmentation.

With the built-in model on a frozen SavedModel backbone that is the cached
backbone features (modules/training/feature_cache.py), and a head is trained on them;
otherwise the transformed images read by the shared `input_fn`, and the whole
model trains. `tuner_fn` and `run_fn` both call `prepare`, and both fit through
`modules.model.hypermodel.FlowerHyperModel.fit`, which asks for the batches of a
trial's own batch size and augmentation, so the two components always train
the same way.
"""

import dataclasses
import functools
import math
from typing import Callable, Dict, Optional, Tuple

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
from tfx.components.trainer.fn_args_utils import FnArgs

from modules.backbones import backbone
from modules.module_config import ModuleConfig
from modules.runtime import strategy
from modules.training import feature_cache, feature_records
from modules.training.augmentation import Augmentation
from modules.training.inputs import input_fn

# An epoch is one pass over the train split, but at least this many batches (the
# data repeats), on cached features and images alike, unless --steps-per-epoch
# says otherwise: 40 photos would otherwise give 2 optimizer steps an epoch, too
# few for SGD or small learning rates to move at all, so a search would rank its
# trials by how few steps they had, and a path that trains through the backbone
# would train less than one on its features under the same flags.
MIN_STEPS_PER_EPOCH = 50


def epoch_steps(images: int, batch_size: int, config: ModuleConfig) -> int:
  """Optimizer steps in an epoch over `images` training images: the one meaning of an epoch."""
  if config.steps_per_epoch:
    return config.steps_per_epoch
  return max(math.ceil(images / batch_size), MIN_STEPS_PER_EPOCH)


def count_examples(file_patterns) -> int:
  """Records in the (GZIP'd, as TFX writes them, or plain) TFRecord files of the patterns."""
  total = 0
  for path in sorted(p for pattern in file_patterns for p in tf.io.gfile.glob(pattern)):
    records = tf.data.TFRecordDataset(path, 'GZIP' if path.endswith('.gz') else '')
    total += int(records.reduce(np.int64(0), lambda n, _: n + 1))
  return total


# (backbone, the image size it sees): whose features a head trains on
# (modules.model.model.backbone_view); None: --backbone at --image-size.
View = Optional[Tuple[str, int]]


@dataclasses.dataclass(frozen=True)
class TrainingData:
  # (batch size, augmentation, view) -> training batches, repeating: `fit` takes `steps_per_epoch`.
  train: Callable[[int, Augmentation, View], tf.data.Dataset]
  # (batch size, view) -> one pass over the evaluation batches.
  eval: Callable[[int, View], tf.data.Dataset]
  # (batch size, view) -> batches per epoch for `fit` (`epoch_steps`).
  steps_per_epoch: Callable[[int, View], Optional[int]]
  cached_features: bool  # True: the model to fit is a head that takes backbone features.
  feature_dim: Optional[int] = None  # The features' size, with cached features.
  # With --fine-tune: the frozen backbone's cached features, the head's first phase
  # (modules/training/fine_tuning.py); None without the feature cache.
  head: Optional['TrainingData'] = None


def prepare(
  fn_args: FnArgs,
  config: ModuleConfig,
  tf_transform_output: tft.TFTransformOutput,
  *,
  view: View = None,
) -> TrainingData:
  """The data for `config`.

  On cached features, those of `view` (the search space's default backbone, or
  the trained one) are computed at once, any other view's when a trial asks.
  The views are ignored on images: the model holds its backbone.
  """
  if strategy.is_oracle_chief():
    return _for_the_oracle(config)
  if feature_cache.applies(config):
    return _cached(fn_args, config, tf_transform_output, view)
  read = functools.partial(
    input_fn,
    data_accessor=fn_args.data_accessor,
    tf_transform_output=tf_transform_output,
    image_size=config.image_size,
  )
  # Counted once, and only when an epoch's length depends on it: it reads the train split.
  images = functools.cache(lambda: count_examples(fn_args.train_files))

  def steps_per_epoch(batch_size: int, view: View = None) -> int:
    return config.steps_per_epoch or epoch_steps(images(), batch_size, config)

  def train(batch_size: int, augment: Augmentation, view: View = None) -> tf.data.Dataset:
    batches = read(fn_args.train_files, batch_size=batch_size, repeat=True, seed=config.seed)
    # A new random draw each epoch: the layers' seed generators move on.
    return augment.apply(batches, seed=config.seed)

  frozen = dataclasses.replace(config, fine_tune=False)
  return TrainingData(
    train=train,
    eval=lambda batch_size, view=None: read(
      fn_args.eval_files, batch_size=batch_size, shuffle=False
    ),
    steps_per_epoch=steps_per_epoch,
    cached_features=False,
    head=_cached(fn_args, frozen, tf_transform_output, view)
    if config.fine_tune and feature_cache.applies(frozen)
    else None,
  )


def _for_the_oracle(config: ModuleConfig) -> TrainingData:
  """No data: the process that serves a parallel search's oracle builds models, and fits none.

  TFX's cloud Tuner (and the local parallel one) runs `tuner_fn` in the chief's
  oracle process too, where keras-tuner builds a model only to learn the search
  space. A backbone pass there would be thrown away, and would keep the oracle
  from serving until it ended: workers give up on an oracle after an hour
  (keras-tuner's OracleClient deadline, gRPC DEADLINE_EXCEEDED).
  """

  def no_data(*_):
    raise RuntimeError('the process that serves the oracle fits no model')

  cached = feature_cache.applies(config)
  return TrainingData(
    train=no_data,
    eval=no_data,
    steps_per_epoch=lambda batch_size, view=None: None,
    cached_features=cached,
    feature_dim=backbone.check(config.backbone, config.image_size) if cached else None,
  )


def _cached(fn_args, config: ModuleConfig, tf_transform_output, view: View) -> TrainingData:
  """A frozen backbone: the head trains on features computed once, shared by trials and Trainer.

  The BackboneFeatures step's records where the pipeline ran it (every view a
  search can choose, unaugmented); otherwise, and for augmented copies, computed
  here (feature_cache.py) per view and augmentation, the first time it is asked for.
  """
  compute = functools.partial(feature_cache.features_for, fn_args, config, tf_transform_output)
  files = {'train': fn_args.train_files, 'eval': fn_args.eval_files}
  computed: Dict[tuple, Tuple[np.ndarray, np.ndarray]] = {}
  default = view or (config.backbone, config.image_size)
  step = feature_records.StepRecords.of(fn_args.custom_config)

  def arrays(split: str, view: View, augment: Optional[Augmentation] = None):
    key = (split, view or default, augment)
    if key not in computed:
      computed[key] = compute(split, files[split], augment=augment, view=key[1])
    return computed[key]

  def train(batch_size: int, augment: Augmentation, view: View = None) -> tf.data.Dataset:
    if step.has(view or default, augment):
      return step.dataset('train', view or default, batch_size, repeat=True, seed=config.seed)
    features, labels = arrays('train', view, augment if augment.any else None)
    return feature_cache.dataset(features, labels, batch_size, repeat=True, seed=config.seed)

  def evaluation(batch_size: int, view: View = None) -> tf.data.Dataset:
    if step.has(view or default):
      return step.dataset('eval', view or default, batch_size, shuffle=False)
    return feature_cache.dataset(*arrays('eval', view), batch_size, shuffle=False)

  def steps_per_epoch(batch_size: int, view: View = None) -> int:
    # As many steps with augmented copies as without: an epoch draws from all of them.
    if step.has(view or default):
      return epoch_steps(step.summary.counts['train'], batch_size, config)
    return epoch_steps(len(arrays('train', view)[1]), batch_size, config)

  if step.has(default):
    print(step.describe(default))
    dim = step.summary.dim(default)
  else:
    dim = int(arrays('train', default)[0].shape[-1])
    arrays('eval', default)
  return TrainingData(
    train=train,
    eval=evaluation,
    steps_per_epoch=steps_per_epoch,
    cached_features=True,
    feature_dim=dim,
  )
