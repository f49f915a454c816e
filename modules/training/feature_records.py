"""The BackboneFeatures step's records: how they are made, and how the Tuner and Trainer read them.

The step (tfx_pipeline/backbone_features.py) runs each frozen backbone a search
can choose (a "view": backbone and the image size it sees) over the train and
eval splits once, on Beam, and writes one gzip'd tf.Example per image: `label`
and, per view, `view<i>` (its feature vector). `features.json` beside the
splits names the views, their feature sizes and each split's count.
`tuner_fn` and `run_fn` find the artifact's folder in their custom_config
(`CUSTOM_CONFIG_KEY`, put there by the components that take the step's output)
and `training_data` reads batches of it with `dataset`: streamed from disk,
held in memory only while a split is small.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from typing import List, Mapping, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from modules import features, image_codec
from modules.backbones import backbone
from modules.training import inputs

# tuner_fn's and run_fn's custom_config entry with the artifact's folder.
CUSTOM_CONFIG_KEY = 'backbone_features_uri'
SPLITS = ('train', 'eval')
SUMMARY_FILE = 'features.json'
LABEL = 'label'
# Bump when what a record holds, or how it is computed, changes.
FORMAT = 1
# A split up to this size is read from disk once and then served from memory (an
# epoch of a small split is mostly its gunzip); larger ones stream every epoch.
IN_MEMORY_BYTES = 512 * 2**20

View = Tuple[str, int]  # (backbone, the image size it sees)


def view_key(index: int) -> str:
  return f'view{index}'


@dataclasses.dataclass(frozen=True)
class Summary:
  """What `features.json` says: the views (in record-key order), their sizes, the split counts."""

  views: Tuple[View, ...]
  dims: Tuple[int, ...]
  counts: Mapping[str, int]

  def key(self, view: View) -> Optional[str]:
    """The record key of `view`'s features, or None when the step did not compute it."""
    view = (view[0], int(view[1]))
    return view_key(self.views.index(view)) if view in self.views else None

  def dim(self, view: View) -> int:
    return self.dims[self.views.index((view[0], int(view[1])))]


def write_summary(uri: str, views: Sequence[View], dims: Sequence[int], counts: Mapping) -> None:
  with tf.io.gfile.GFile(os.path.join(uri, SUMMARY_FILE), 'w') as f:
    json.dump(
      {
        'format': FORMAT,
        'views': [{'backbone': h, 'image_size': s, 'dim': d} for (h, s), d in zip(views, dims)],
        # Beam gathers the counts in any order, and none for an empty split.
        'counts': {split: int(counts.get(split, 0)) for split in SPLITS},
      },
      f,
      indent=1,
    )


def write_summary_of(counts: Mapping, uri: str, views: Sequence[View], sample: Sequence[bytes]):
  """`write_summary` as a Beam step's element: the counts, and each view's size read off one
  of the records (`sample`), so the step never loads a backbone just to learn its size."""
  if not sample:
    raise ValueError(f'{uri}: no train or eval example to compute backbone features of.')
  feature = tf.train.Example.FromString(sample[0]).features.feature
  dims = [len(feature[view_key(i)].float_list.value) for i in range(len(views))]
  write_summary(uri, views, dims, counts)


def read_summary(uri: str) -> Summary:
  with tf.io.gfile.GFile(os.path.join(uri, SUMMARY_FILE)) as f:
    summary = json.load(f)
  views = summary['views']
  return Summary(
    views=tuple((v['backbone'], int(v['image_size'])) for v in views),
    dims=tuple(int(v['dim']) for v in views),
    counts=summary['counts'],
  )


@dataclasses.dataclass(frozen=True)
class StepRecords:
  """The step's records as tuner_fn or run_fn finds them: None where no step ran."""

  uri: Optional[str]
  summary: Optional[Summary]

  @classmethod
  def of(cls, custom_config: Optional[Mapping]) -> 'StepRecords':
    uri = (custom_config or {}).get(CUSTOM_CONFIG_KEY)
    return cls(uri, read_summary(uri) if uri else None)

  def has(self, view: View, augment=None) -> bool:
    """Whether the records hold `view`'s features; never those of augmented copies."""
    augmented = augment is not None and augment.any
    return self.summary is not None and self.summary.key(view) is not None and not augmented

  def dataset(self, split: str, view: View, batch_size: int, **kwargs) -> tf.data.Dataset:
    return dataset(self.uri, split, view, batch_size, summary=self.summary, **kwargs)

  def describe(self, view: View) -> str:
    return (
      f'features: {view[0]} at {view[1]} px, {dict(self.summary.counts)} examples, '
      f'from the BackboneFeatures step ({self.uri})'
    )


def split_files(uri: str, split: str) -> str:
  return os.path.join(uri, f'Split-{split}', '*')


@functools.lru_cache(maxsize=16)
def extractor(handle: str, size: int, stored_size: int, fingerprint: str = ''):
  """The backbone's traced feature function at `size`, for images stored at `stored_size`.

  Loading and tracing a ResNet-50-class SavedModel takes about 2 s, so each is
  traced once per process and size, and loaded once for all its sizes (a frozen
  layer shares `backbone.load_frozen`'s copy); `fingerprint` (of its files) is
  part of the memo key, so re-exported weights at the same path are reloaded.
  Stored images of another size are resized as the served model's Resizing
  layer does (modules/model/model.py: `tf.image.resize`, bilinear).
  """
  del fingerprint  # Part of the memo key only.
  layer = backbone.build_backbone(handle, fine_tune=False)
  # Any batch size, one trace: Beam's batches vary in size, and each new shape would
  # otherwise trace the whole backbone again (seconds each).
  signature = [tf.TensorSpec([None, stored_size, stored_size, 3], tf.float32)]
  if size == stored_size:
    return tf.function(lambda images: layer(images, training=False), input_signature=signature)
  return tf.function(
    lambda images: layer(tf.image.resize(images, [size, size]), training=False),
    input_signature=signature,
  )


def batch_extractor(views: Sequence[View], stored_size: int):
  """serialized transformed examples [N] -> (labels [N], {view key: features [N, D]}), traced once.

  Parsing and decoding run in the same graph as the backbones: run eagerly, the
  per-image decode is a Python loop that took longer than the backbone itself.
  """
  calls = {view_key(i): extractor(h, s, stored_size) for i, (h, s) in enumerate(views)}
  spec = {
    features.IMAGE: tf.io.FixedLenFeature([], tf.string),
    features.LABEL: tf.io.VarLenFeature(tf.int64),
  }

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
  def extract(serialized):
    parsed = tf.io.parse_example(serialized, spec)
    images = image_codec.model_input(parsed[features.IMAGE], stored_size)
    labels = tf.reshape(tf.sparse.to_dense(parsed[features.LABEL]), [-1])
    return labels, {key: call(images) for key, call in calls.items()}

  return extract


def to_example(label: int, vectors: Mapping[str, np.ndarray]) -> bytes:
  """One record: the label and each view's feature vector."""
  feature = {LABEL: tf.train.Feature(int64_list=tf.train.Int64List(value=[int(label)]))}
  for key, vector in vectors.items():
    feature[key] = tf.train.Feature(float_list=tf.train.FloatList(value=vector.tolist()))
  return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def dataset(
  uri: str,
  split: str,
  view: View,
  batch_size: int,
  *,
  shuffle: bool = True,
  repeat: bool = False,
  seed: Optional[int] = None,
  summary: Optional[Summary] = None,
) -> tf.data.Dataset:
  """Batches of (features [B, D] float32, label [B] int64) of `view` over `split`."""
  summary = summary or read_summary(uri)
  key, dim = summary.key(view), summary.dim(view)
  count = summary.counts[split]
  files = tf.io.gfile.glob(split_files(uri, split))
  records = tf.data.TFRecordDataset(files, compression_type='GZIP')
  if count * (dim * 4 + 64) <= IN_MEMORY_BYTES:
    records = records.cache()
  if shuffle:
    # As many records as the bytes allow: the whole split where it is small.
    buffer = max(batch_size, min(count, inputs.SHUFFLE_BUFFER_BYTES // (dim * 4 + 64)))
    records = records.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
  if repeat:
    records = records.repeat()
  spec = {key: tf.io.FixedLenFeature([dim], tf.float32), LABEL: tf.io.FixedLenFeature([], tf.int64)}

  def parse(batch):
    parsed = tf.io.parse_example(batch, spec)
    return parsed[key], parsed[LABEL]

  return records.batch(batch_size).map(parse, num_parallel_calls=tf.data.AUTOTUNE).prefetch(2)


def views_of(
  default: View,
  choices: Optional[List[str]],
  native_size,
  sizes: Sequence[int] = (),
  sometimes: bool = False,
) -> List[View]:
  """The views a run can train on, each once.

  Each searched backbone (`choices`, or the default one) at each searched image
  size (`sizes`); without sizes, or where a condition may leave the size out
  (`sometimes`), also each searched backbone at its own size (or at the stored
  one where that is smaller), or the default view.
  """
  backbones = choices or [default[0]]
  views = [(name, int(size)) for name in backbones for size in sizes]
  if sometimes or not sizes:
    views += [(n, min(native_size(n), default[1])) for n in choices] if choices else [default]
  return list(dict.fromkeys(views))
