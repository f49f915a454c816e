"""Finds the train/eval splits in a data folder before any component runs.

A folder laid out like the published flower TFRecords
(`image_classification_builder-{train,validation,test}.tfrecord-*`) gives its
train and validation shards as the train and eval splits. Any other folder of
TFRecord files is split 80/20 by a hash of each example.
"""
from __future__ import annotations

import dataclasses
import fnmatch
import os
from typing import List, Optional

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


def _published(split: str) -> str:
  return PUBLISHED_PATTERN.format(split=split)


def resolve(data_root: str) -> DataLayout:
  """Returns the split configuration for `data_root`, or raises DataLayoutError."""
  if not os.path.isdir(data_root):
    raise DataLayoutError(f'--data-root {data_root} is not a folder: point it at a folder '
                          'of flower TFRecords (see data/README.md).')
  names = sorted(os.listdir(data_root))
  train = fnmatch.filter(names, _published('train'))
  validation = fnmatch.filter(names, _published('validation'))
  if train and validation:
    return DataLayout(
        input_config=tfx.proto.Input(splits=[
            tfx.proto.Input.Split(name='train', pattern=_published('train')),
            tfx.proto.Input.Split(name='eval', pattern=_published('validation')),
        ]),
        output_config=None,
        description=(f'{len(train)} train and {len(validation)} validation shards '
                     f'in {data_root}'))

  pattern, files = _tfrecord_files(names)
  if not files:
    raise DataLayoutError(f'--data-root {data_root} holds no TFRecord files (*.tfrecord*): '
                          'point it at flower TFRecords, e.g. data/sample.')
  return DataLayout(
      input_config=tfx.proto.Input(splits=[tfx.proto.Input.Split(name='single', pattern=pattern)]),
      output_config=tfx.proto.Output(split_config=tfx.proto.SplitConfig(splits=[
          tfx.proto.SplitConfig.Split(name='train', hash_buckets=4),
          tfx.proto.SplitConfig.Split(name='eval', hash_buckets=1),
      ])),
      description=(f'{len(files)} TFRecord files in {data_root} with no train/validation '
                   'shards: splitting them 80/20 into train/eval by hash'))


def _tfrecord_files(names: List[str]):
  """The first TFRecord pattern that matches, preferring the published naming."""
  for pattern in (_published('*'),) + TFRECORD_PATTERNS:
    files = fnmatch.filter(names, pattern)
    if files:
      return pattern, files
  return None, []
