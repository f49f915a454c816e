"""Backbone features computed in the Tuner or Trainer: augmented copies, and runs without the step.

A frozen SavedModel backbone computes the same features in every epoch of
every trial, so each split's are computed once and every trial trains only the
head on them. The pipeline's BackboneFeatures step computes the plain features
of every view (tfx_pipeline/backbone_features.py, read through
modules/training/feature_records.py); `training_data` calls `features_for`
when `applies(config)` for what the step does not hold: the features of
augmented copies, and any features where no step ran (`tuner_fn` or `run_fn`
called outside the pipeline).

Where: `<feature_cache_dir>/<key>.npz` (features float32 [N, D], labels [N])
and `<key>.json` (what the key was made of), where `feature_cache_dir` comes
from the pipeline (`RunPaths`, `<pipeline-root>/feature_cache`) or, without
one, the component's working dir (then it lasts one run).

Key: a hash of the entry format, the format Transform stores images in
(`image_codec.FORMAT`), the backbone handle and the contents of its SavedModel
files, the image size, the Transform graph's contents, the contents of the split's
transformed example files, and the split; for augmented copies also the switches,
their strengths, the number of copies and the seed. Contents, not sizes: transformed
images have a fixed size, so two data sets with as many images would have files
of equal size. Any change to data or backbone is a new key, so a stale entry is
never read; entries are never rewritten, and deleting the folder is always safe.
Writes go to a temporary file renamed into place, so a killed run leaves no
half-written entry.
"""

from __future__ import annotations

import io
import json
import os
import time
from typing import Iterable, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from modules import image_codec
from modules.backbones import backbone
from modules.module_config import BUILTIN_BACKBONE, ModuleConfig, RunPaths
from modules.runtime import content_key, whole_file
from modules.runtime.content_key import ContentKey
from modules.training import augmentation, feature_records
from modules.training.augmentation import Augmentation
from modules.training.inputs import input_fn
from modules.tuning import state as tuning_state

# Bump when the entry layout or the way features are computed changes. 2: features of
# the uint8 images Transform stores (image_codec), no longer of float32 pixels.
FORMAT = 2


def base_dir(pipeline_root: str) -> str:
  """The pipeline's feature cache folder."""
  return os.path.join(pipeline_root, 'feature_cache')


def applies(config: ModuleConfig) -> bool:
  """Only the built-in model on a frozen SavedModel backbone computes the same features every epoch.

  A user's `--hypermodel` builds the whole model, backbone included, so it trains on images.
  """
  return (
    config.feature_cache
    and config.backbone != BUILTIN_BACKBONE
    and not config.fine_tune
    and not config.hypermodel
  )


def _hash_files(key: ContentKey, paths: Iterable[Tuple[str, str]]) -> None:
  """Adds (name, contents) of each (name, path) to `key`, streaming large files."""
  for name, path in paths:
    key.add(name).add_file(path)


def _tree(root: str):
  for folder, _, names in sorted(tf.io.gfile.walk(root)):
    for name in sorted(names):
      path = os.path.join(folder, name)
      yield os.path.relpath(path, root), path


def backbone_fingerprint(handle: str) -> str:
  """Content hash of the backbone's SavedModel files (TF-Hub handles resolve to a local copy)."""
  key = ContentKey()
  _hash_files(key, _tree(backbone.saved_model_dir(handle)))
  return key.hex()


def data_fingerprint(transform_graph_path: str, files: Sequence[str]) -> str:
  """Content hash of the Transform graph and of the split's transformed example files."""
  # The graph part of the tuning key (no data files): the same hash of the same folder.
  key = ContentKey().add(tuning_state.data_fingerprint(transform_graph_path, []), end=b'')
  paths = sorted(p for pattern in files for p in tf.io.gfile.glob(pattern))
  # File names without their artifact folders, which change on every Transform run.
  _hash_files(key, ((os.path.basename(p), p) for p in paths))
  return key.hex()


def describe(
  config: ModuleConfig,
  transform_graph_path: str,
  files: Sequence[str],
  split: str,
  augment: Optional[Augmentation] = None,
  view: Optional[Tuple[str, int]] = None,
) -> dict:
  """Everything an entry's features depend on; `view`: (backbone, its image size)."""
  handle, size = view or (config.backbone, config.image_size)
  description = {
    'format': FORMAT,
    'image_format': image_codec.FORMAT,
    'backbone': handle,
    'backbone_files': backbone_fingerprint(handle),
    'image_size': config.image_size,
    'split': split,
    'data': data_fingerprint(transform_graph_path, files),
  }
  if size != config.image_size:  # The stored images, resized for this backbone.
    description['backbone_image_size'] = size
  if augment is not None and augment.any:
    # Features of `copies` augmented copies of each image, drawn with these seeds.
    description['augment'] = {
      'switches': augment.describe(),
      'rotation_factor': augmentation.ROTATION_FACTOR,
      'zoom_factor': augmentation.ZOOM_FACTOR,
      'copies': config.augment_copies,
      'seed': config.seed,
    }
  return description


def key_of(description: dict) -> str:
  return content_key.of(json.dumps(description, sort_keys=True), length=24)


def compute(call, dataset: tf.data.Dataset) -> Tuple[np.ndarray, np.ndarray]:
  """One pass of the feature function `call` over (image, label) batches.

  Returns features [N, D] and labels [N].
  """
  features, labels = [], []
  for images, label in dataset:
    features.append(call(images).numpy().astype(np.float32))
    labels.append(np.reshape(label.numpy(), [-1]))
  return np.concatenate(features), np.concatenate(labels)


def _write(path: str, features: np.ndarray, labels: np.ndarray) -> None:
  buffer = io.BytesIO()
  np.savez(buffer, features=features, labels=labels)
  # Readers see no entry or a complete one.
  whole_file.write(path, buffer.getvalue())


def _read(path: str) -> Tuple[np.ndarray, np.ndarray]:
  with tf.io.gfile.GFile(path, 'rb') as f:
    arrays = np.load(io.BytesIO(f.read()))
    return arrays['features'], arrays['labels']


def _compute_split(call, fn_args, config, tf_transform_output, files, augment):
  """Runs the backbone over a split, once, or once per augmented copy; (features, labels)."""
  parts = []
  for copy in range(config.augment_copies if augment else 1):
    dataset = input_fn(
      files,
      fn_args.data_accessor,
      tf_transform_output,
      config.batch_size,
      image_size=config.image_size,
      shuffle=False,
    )
    if augment:
      dataset = augment.apply(dataset, seed=config.seed + copy)
    parts.append(compute(call, dataset))
  return np.concatenate([f for f, _ in parts]), np.concatenate([labels for _, labels in parts])


def features_for(
  fn_args,
  config: ModuleConfig,
  tf_transform_output,
  split: str,
  files: Sequence[str],
  augment: Optional[Augmentation] = None,
  echo=print,
  view: Optional[Tuple[str, int]] = None,
) -> Tuple[np.ndarray, np.ndarray]:
  """The backbone's features and the labels of one split: from the cache, or computed and stored.

  With `augment` switches on, the features of `config.augment_copies` augmented
  copies of every image (copy i drawn with seed `config.seed + i`), one after
  another: [copies * N, D], and the labels repeated to match. `view` is
  (backbone, image size) where a search chooses the backbone.
  """
  handle, size = view or (config.backbone, config.image_size)
  folder = RunPaths.from_custom_config(fn_args.custom_config).feature_cache_dir or os.path.join(
    fn_args.working_dir, 'feature_cache'
  )
  augment = augment if augment is not None and augment.any else None
  description = describe(config, fn_args.transform_graph_path, files, split, augment, view)
  what = f'{split} ({handle}, {size} px' + (
    f', {augment.describe()} x{config.augment_copies})' if augment else ')'
  )
  path = os.path.join(folder, key_of(description) + '.npz')
  if tf.io.gfile.exists(path):
    features, labels = _read(path)
    echo(f'feature cache: {what}: {len(labels)} examples from {path}')
    return features, labels
  start = time.monotonic()
  call = feature_records.extractor(
    handle, size, config.image_size, fingerprint=description['backbone_files']
  )
  features, labels = _compute_split(call, fn_args, config, tf_transform_output, files, augment)
  tf.io.gfile.makedirs(folder)
  _write(path, features, labels)
  with tf.io.gfile.GFile(path[: -len('.npz')] + '.json', 'w') as f:
    json.dump(description, f, indent=1, sort_keys=True)
  echo(
    f'feature cache: {what}: computed {features.shape} features in '
    f'{time.monotonic() - start:.1f}s into {path}'
  )
  return features, labels


def dataset(
  features: np.ndarray,
  labels: np.ndarray,
  batch_size: int,
  *,
  shuffle: bool = True,
  repeat: bool = False,
  seed: Optional[int] = None,
) -> tf.data.Dataset:
  """Batches of (features, label) from memory, shuffled each epoch like input_fn's."""
  data = tf.data.Dataset.from_tensor_slices((features, labels))
  if shuffle:
    data = data.shuffle(len(labels), seed=seed, reshuffle_each_iteration=True)
  if repeat:
    data = data.repeat()
  return data.batch(batch_size).prefetch(tf.data.AUTOTUNE)
