"""Beam's workers: Transform writes the same data with one worker, threads or processes."""

import glob
import os

import pytest

from tests.conftest import REPO
from tfx_pipeline.local import beam


def test_auto_goes_by_the_size_of_the_data():
  mb = 2**20
  assert beam.workers_mode('auto', 0, cores=2) == 'one'
  assert beam.workers_mode('auto', beam.THREADS_FROM_MB * mb - 1, cores=2) == 'one'
  assert beam.workers_mode('auto', beam.THREADS_FROM_MB * mb, cores=2) == 'threads'
  assert beam.workers_mode('auto', beam.PROCESSES_FROM_MB * mb, cores=2) == 'processes'
  assert beam.workers_mode('auto', 10**12, cores=1) == 'one'
  assert beam.workers_mode('threads', 0) == 'threads'
  with pytest.raises(ValueError, match='--beam-workers many'):
    beam.workers_mode('many', 1)


def test_the_size_is_the_data_folders_tfrecord_files(tmp_path):
  (tmp_path / 'a-train.tfrecord-00000-of-00001').write_bytes(b'x' * 300)
  (tmp_path / 'a-test.tfrecord-00000-of-00001.gz').write_bytes(b'x' * 20)
  (tmp_path / 'labels.txt').write_bytes(b'x' * 1000)
  assert beam.data_bytes(str(tmp_path)) == 320


def test_tfx_does_not_package_itself_for_the_direct_runner():
  from tfx.utils import dependency_utils

  for mode in ('one', 'threads', 'processes'):
    args = list(beam.pipeline_args(mode))
    # Otherwise TFX builds an sdist of its own installation (2 s, 48 MB in /tmp) per Beam step.
    assert dependency_utils.make_beam_dependency_flags(args) == args


def _latest(folder):
  """The newest artifact folder (TFX names them by execution id)."""
  return os.path.join(folder, max(os.listdir(folder), key=int))


def _transformed(pipeline_root):
  """Per split, the sorted (image, label) of every transformed example; the vocabulary."""
  import tensorflow as tf

  from modules import features

  output = _latest(os.path.join(pipeline_root, 'Transform', 'transformed_examples'))
  result = {}
  for split in ('train', 'eval'):
    files = glob.glob(os.path.join(output, f'Split-{split}', '*.gz'))
    rows = []
    for record in tf.data.TFRecordDataset(files, compression_type='GZIP'):
      feature = tf.train.Example.FromString(record.numpy()).features.feature
      rows.append(
        (
          feature[features.IMAGE].bytes_list.value[0],
          feature[features.LABEL].int64_list.value[0],
        )
      )
    result[split] = sorted(rows)
  graph = _latest(os.path.join(pipeline_root, 'Transform', 'transform_graph'))
  (vocabulary,) = glob.glob(os.path.join(graph, 'transform_fn', 'assets', '*'))
  with open(vocabulary, 'rb') as f:
    result['vocabulary'] = f.read()
  return result


def _run_upstream(data_root, pipeline_root, transform_mode):
  """ImportExampleGen -> Transform: Transform on `transform_mode`, the others on one worker.

  The steps before Transform come from TFX's cache after the first run.
  """
  from tfx import v1 as tfx

  from modules.module_config import ModuleConfig
  from tfx_pipeline import pipeline
  from tfx_pipeline.config import PipelineConfig
  from tfx_pipeline.data_folder import layout as data_layout

  config = PipelineConfig(
    data_root=data_root, pipeline_root=pipeline_root, module=ModuleConfig(image_size=32)
  )
  example_gen = pipeline._example_gen(data_root, data_layout.find_splits(data_root))
  statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs['examples'])
  schema_gen = pipeline._schema_gen(statistics_gen)
  transform = pipeline._transform(example_gen, schema_gen, config)
  transform.with_beam_pipeline_args(list(beam.prepare(transform_mode, REPO)))
  tfx.orchestration.LocalDagRunner().run(
    tfx.dsl.Pipeline(
      pipeline_name='beam-workers',
      pipeline_root=pipeline_root,
      components=[example_gen, statistics_gen, schema_gen, transform],
      enable_cache=True,
      metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
        os.path.join(pipeline_root, 'metadata.sqlite')
      ),
      beam_pipeline_args=list(beam.pipeline_args('one')),
    )
  )


def test_transform_output_is_the_same_with_one_worker_threads_or_processes(
  tiny_data, tmp_path, monkeypatch
):
  # beam.prepare sets what the workers need in the environment: restore it afterwards.
  for name in ('PYTHONPATH', 'no_grpc_proxy'):
    monkeypatch.setenv(name, os.environ.get(name, ''))
  root, outputs = str(tmp_path / 'root'), {}
  for mode in ('one', 'threads', 'processes'):
    _run_upstream(tiny_data, root, mode)
    outputs[mode] = _transformed(root)
  # The Beam options are part of Transform's cache key: it ran three times, the rest once.
  assert len(os.listdir(os.path.join(root, 'Transform', 'transformed_examples'))) == 3
  assert len(os.listdir(os.path.join(root, 'ImportExampleGen', 'examples'))) == 1
  assert len(outputs['one']['train']) == 30 and len(outputs['one']['eval']) == 10
  assert outputs['threads'] == outputs['one']
  assert outputs['processes'] == outputs['one']
