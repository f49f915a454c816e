"""Finds the train/eval splits in a data folder before any component runs.

A folder laid out like the published flower TFRecords
(`image_classification_builder-{train,validation,test}.tfrecord-*`) gives its
train and validation shards as the train and eval splits. Any other folder of
TFRecord files is split 80/20 by a hash of each example.

Called by the runners and `create_pipeline` before any component runs, so an
unusable folder is one error line, not a failed Beam job: a missing or empty
folder, a published layout with train but no validation shards (or the other
way round), or a matched file that is not a TFRecord file.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import os
from typing import Dict, List, Optional, Tuple

import tensorflow as tf
from tfx import v1 as tfx

PUBLISHED_PATTERN = 'image_classification_builder-{split}.tfrecord-*'
TFRECORD_PATTERNS = ('*.tfrecord*', '*.tfrec')


class DataLayoutError(ValueError):
  """The data folder cannot be read as flower TFRecords."""


@dataclasses.dataclass(frozen=True)
class DataLayout:
  """ImportExampleGen's input/output configuration for one data folder."""

  input_config: tfx.proto.Input
  output_config: Optional[tfx.proto.Output]
  description: str
  # The files each split reads: 'train' and 'eval', or 'all' for a folder split by hash.
  split_files: Dict[str, Tuple[str, ...]] = dataclasses.field(default_factory=dict)


def _published(split: str) -> str:
  return PUBLISHED_PATTERN.format(split=split)


def find_splits(data_root: str) -> DataLayout:
  """Returns the split configuration for `data_root`, or raises DataLayoutError."""
  names = _listed(data_root)
  train = fnmatch.filter(names, _published('train'))
  validation = fnmatch.filter(names, _published('validation'))
  if bool(train) != bool(validation):
    # Hash-splitting would mix these shards (and any test shards) into training.
    have, missing = ('train', 'validation') if train else ('validation', 'train')
    raise DataLayoutError(
      f'--data-root {data_root} has {have} shards but no {missing} shards '
      f'({_published(missing)}): add them, or convert the photos again '
      'with python -m data.convert.'
    )
  if train and validation:
    _check_tfrecords(data_root, train + validation)
    return published_layout(
      description=(f'{len(train)} train and {len(validation)} validation shards in {data_root}'),
      split_files={'train': _paths(data_root, train), 'eval': _paths(data_root, validation)},
    )

  return _hash_split(data_root, names)


def _listed(data_root: str) -> List[str]:
  """The names in `data_root`; raises DataLayoutError where it is no folder, or empty."""
  if not os.path.isdir(data_root):
    raise DataLayoutError(
      f'--data-root {data_root} is not a folder: point it at a folder '
      'of flower TFRecords (see data/README.md).'
    )
  names = sorted(os.listdir(data_root))
  if not names:
    raise DataLayoutError(
      f'--data-root {data_root} is empty: put flower TFRecords there, or '
      'convert photos with python -m data.convert (see data/README.md).'
    )
  return names


def _hash_split(data_root: str, names: List[str]) -> DataLayout:
  """A folder without published shards: its TFRecord files, split by hash."""
  pattern, files = _tfrecord_files(names)
  if not files:
    if any(os.path.isdir(os.path.join(data_root, n)) for n in names):
      raise DataLayoutError(
        f'--data-root {data_root} holds no TFRecord files (*.tfrecord*) '
        'but has sub-folders: if they hold photos, convert them first with '
        f'python -m data.convert --data-root {data_root} --out FOLDER.'
      )
    raise DataLayoutError(
      f'--data-root {data_root} holds no TFRecord files (*.tfrecord*): '
      'point it at flower TFRecords, e.g. data/sample.'
    )
  _check_tfrecords(data_root, files)
  return hash_split_layout(
    pattern,
    description=(
      f'{len(files)} TFRecord files in {data_root} with no train/validation '
      'shards: splitting them 80/20 into train/eval by hash'
    ),
    split_files={'all': _paths(data_root, files)},
  )


def published_layout(description: str, split_files=None) -> DataLayout:
  """Train and validation shards of the published naming as the train and eval splits."""
  return DataLayout(
    input_config=tfx.proto.Input(
      splits=[
        tfx.proto.Input.Split(name='train', pattern=_published('train')),
        tfx.proto.Input.Split(name='eval', pattern=_published('validation')),
      ]
    ),
    output_config=None,
    description=description,
    split_files=split_files or {},
  )


def hash_split_layout(pattern: str, description: str, split_files=None) -> DataLayout:
  """Every file matching `pattern`, split 80/20 into train/eval by a hash of each example."""
  return DataLayout(
    input_config=tfx.proto.Input(splits=[tfx.proto.Input.Split(name='single', pattern=pattern)]),
    output_config=tfx.proto.Output(
      split_config=tfx.proto.SplitConfig(
        splits=[
          tfx.proto.SplitConfig.Split(name='train', hash_buckets=4),
          tfx.proto.SplitConfig.Split(name='eval', hash_buckets=1),
        ]
      )
    ),
    description=description,
    split_files=split_files or {},
  )


def _paths(data_root: str, names: List[str]) -> Tuple[str, ...]:
  return tuple(os.path.join(data_root, n) for n in names)


def _check_tfrecords(data_root: str, names: List[str]) -> None:
  """Raises DataLayoutError naming the first file that does not start with a TFRecord record.

  Reads one record per file: cheap, and it catches a photo, an archive or a
  text file among the shards before ImportExampleGen fails deep in Beam.
  """
  for name in names:
    path = os.path.join(data_root, name)
    try:
      empty = not any(True for _ in tf.data.TFRecordDataset(path).take(1))
    except tf.errors.DataLossError:
      empty = None
    # A file shorter than one record header also reads as empty.
    if empty is None or (empty and os.path.getsize(path) > 0):
      raise DataLayoutError(
        f'{path} is not a TFRecord file: remove it from --data-root, or '
        'rename it so it does not match the shard names.'
      )


def _tfrecord_files(names: List[str]):
  """The first TFRecord pattern that matches, preferring the published naming."""
  for pattern in (_published('*'),) + TFRECORD_PATTERNS:
    files = fnmatch.filter(names, pattern)
    if files:
      return pattern, files
  return None, []
