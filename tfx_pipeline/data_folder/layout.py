"""Finds the train/eval/test splits in a data folder before any component runs.

Each split has one job: train fits, eval is what the Tuner selects trials by
(and stops them early on), test is scored by the Evaluator alone. A folder
laid out like the published flower TFRecords
(`image_classification_builder-{train,validation,test}.tfrecord-*`) gives its
train, validation and (optional) test shards as the three splits; without test
shards the Evaluator scores the eval split, so its figure is optimistic. Any
other folder of TFRecord files is split 80/10/10 by a hash of each example.

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
from tfx.proto.example_gen_pb2 import Input, Output, SplitConfig

PUBLISHED_PATTERN = 'image_classification_builder-{split}.tfrecord-*'
EVAL, TEST = 'eval', 'test'
TFRECORD_PATTERNS = ('*.tfrecord*', '*.tfrec')


class DataLayoutError(ValueError):
  """The data folder cannot be read as flower TFRecords."""


@dataclasses.dataclass(frozen=True)
class DataLayout:
  """ImportExampleGen's input/output configuration for one data folder."""

  input_config: Input
  output_config: Optional[Output]
  description: str
  # The files each split reads: 'train', 'eval' (and 'test'), or 'all' for a folder split by hash.
  split_files: Dict[str, Tuple[str, ...]] = dataclasses.field(default_factory=dict)
  # Whether there is a test split; without one the Evaluator scores the eval split.
  has_test: bool = False

  @property
  def evaluated_split(self) -> str:
    """The split the Evaluator scores: the one no search or early stopping has seen, if any."""
    return TEST if self.has_test else EVAL


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
    test = fnmatch.filter(names, _published('test'))
    _check_tfrecords(data_root, train + validation + test)
    split_files = {'train': _paths(data_root, train), EVAL: _paths(data_root, validation)}
    if test:
      split_files[TEST] = _paths(data_root, test)
    shards = f'{len(train)} train, {len(validation)} validation and '
    return published_layout(
      description=shards + f'{len(test) or "no"} test shards in {data_root}',
      split_files=split_files,
      test=bool(test),
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
      'shards: splitting them 80/10/10 into train/eval/test by hash'
    ),
    split_files={'all': _paths(data_root, files)},
  )


def published_layout(description: str, split_files=None, test: bool = True) -> DataLayout:
  """Train, validation (and `test`) shards of the published naming as train, eval (and test)."""
  splits = [('train', 'train'), (EVAL, 'validation')] + ([(TEST, 'test')] if test else [])
  return DataLayout(
    input_config=Input(
      splits=[Input.Split(name=n, pattern=_published(shards)) for n, shards in splits]
    ),
    output_config=None,
    description=description,
    split_files=split_files or {},
    has_test=test,
  )


def hash_split_layout(pattern: str, description: str, split_files=None) -> DataLayout:
  """Every file matching `pattern`, split 80/10/10 into train/eval/test by hash of each example."""
  buckets = (('train', 8), (EVAL, 1), (TEST, 1))
  return DataLayout(
    input_config=Input(splits=[Input.Split(name='single', pattern=pattern)]),
    output_config=Output(
      split_config=SplitConfig(
        splits=[SplitConfig.Split(name=n, hash_buckets=b) for n, b in buckets]
      )
    ),
    description=description,
    split_files=split_files or {},
    has_test=True,
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
