"""The Vertex pipeline's data: its folder and splits, declared by flags rather than listed.

Compiling is offline, so a gs:// folder cannot be looked into: `--split-by-hash`
and `--no-test-split` say which of the layouts `data_layout.find_splits` finds in
a local folder this one has. Read by run_vertex.py's parser and compile step.
"""

from __future__ import annotations

import argparse

from tfx_pipeline.config import PipelineConfig


def add_flags(p: argparse.ArgumentParser) -> None:
  """Where the data and the artifacts are: gs:// folders, unlike run_local.py's."""
  g = p.add_argument_group('data')
  g.add_argument('--pipeline-root', help='gs:// folder for artifacts and pushed models (required)')
  g.add_argument(
    '--data-root',
    help='gs:// folder of flower TFRecords (required; with --rehearse, a local folder too)',
  )
  g.add_argument(
    '--split-by-hash',
    action='store_true',
    help='the data folder is not in the published layout '
    '(image_classification_builder-{train,validation,test}.tfrecord-*): split its '
    '*.tfrecord* files 80/10/10 into train/eval/test by hash',
  )
  g.add_argument(
    '--no-test-split',
    dest='test_split',
    action='store_false',
    help='the published-layout folder has no test shards: the Evaluator scores the '
    'validation split the search picked its best trial by (an optimistic figure)',
  )


def data_layout_for(data_root: str, split_by_hash: bool = False, test_split: bool = True):
  """The splits of a gs:// data folder, declared rather than listed (compiling is offline).

  The same layouts `data_layout.find_splits` finds in a local folder.
  """
  from tfx_pipeline.data_folder import layout as data_layout

  if not split_by_hash:
    shards = 'train, validation and test' if test_split else 'train and validation'
    return data_layout.published_layout(
      f'published {shards} shards in {data_root}', test=test_split
    )
  return data_layout.hash_split_layout(
    data_layout.TFRECORD_PATTERNS[0],
    f'TFRecord files in {data_root}, split 80/10/10 into train/eval/test by hash',
  )


def layout_from_args(config: PipelineConfig, args: argparse.Namespace):
  """The data layout --split-by-hash and --no-test-split declare for `config.data_root`."""
  return data_layout_for(config.data_root, args.split_by_hash, args.test_split)
