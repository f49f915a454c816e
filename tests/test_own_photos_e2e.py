"""A user's own 3-class photo folder, with broken files, converts, trains and serves 3 classes;
a later run on bad data fails in one line and leaves the pushed model in place."""

import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from data import conversion, records
from tests import tiny
from tests.test_convert import add_odd_files, make_photo_folder
from tfx_pipeline.local import cli, results
from tfx_pipeline.local import runner as local_runner

pytestmark = pytest.mark.pipeline
CLASSES = ['daisy', 'roses', 'tulips']


def _tree(folder):
  return sorted(
    os.path.relpath(os.path.join(d, f), folder) for d, _, files in os.walk(folder) for f in files
  )


def test_converted_folder_trains_serves_its_classes_and_bad_data_keeps_the_model(tmp_path, capsys):
  photos = make_photo_folder(tmp_path / 'photos', per_class=8)
  add_odd_files(photos)
  out = str(tmp_path / 'tfrecords')
  converted = conversion.convert(
    str(photos), out, ratios={'train': 0.6, 'validation': 0.4, 'test': 0.0}, echo=lambda _: None
  )
  assert len(converted['skipped']) == 4

  config = tiny.pipeline(
    out, tmp_path / 'root', tuner='random', max_trials=1, max_epochs=1, epochs=1
  )
  lines = []
  summary = local_runner.run(config, echo=lines.append)
  assert 'data check: 30 records in 2 files, every image decodes' in lines
  assert summary.pushed_model and os.path.isdir(summary.pushed_model)

  # The class names (and so their number) come from the data, in label order.
  import tensorflow_transform as tft

  from modules import labels

  run = results.latest_run(config.metadata_path, config.pipeline_name)
  transform_graph = results.output_uri(run, 'Transform', 'transform_graph')
  assert labels.class_names(tft.TFTransformOutput(transform_graph)) == CLASSES

  model = tf.saved_model.load(summary.pushed_model)
  jpegs = [(photos / name / f'{name}_0.jpg').read_bytes() for name in CLASSES]
  out_jpeg = model.signatures['serving_jpeg'](images=tf.constant(jpegs))
  probabilities = out_jpeg['probabilities'].numpy()
  assert probabilities.shape == (3, 3)
  np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
  assert [n.decode() for n in out_jpeg['class_name'].numpy()] == [
    CLASSES[i] for i in probabilities.argmax(axis=1)
  ]

  _bad_data_later_keeps_the_model(out, tmp_path, capsys, config, summary)


def _bad_data_later_keeps_the_model(out, tmp_path, capsys, config, summary):
  """Bad data later: one error line, no component runs, the pushed model stays."""
  before = _tree(str(tmp_path / 'root' / 'serving_model'))
  bad = tmp_path / 'bad'
  shutil.copytree(out, bad)
  with tf.io.TFRecordWriter(str(bad / records.shard_name('train', 1, 2))) as writer:
    writer.write(records.to_example('roses/broken.jpg', 1, 'roses', b'\xff\xd8\xff broken', 32, 32))
  capsys.readouterr()
  argv = ['--data-root', str(bad), '--pipeline-root', str(tmp_path / 'root')]
  rc = cli.main([*argv, *tiny.flags(tuner='random', max_trials=1)])
  captured = capsys.readouterr()
  assert rc == 2
  error, log = captured.err.splitlines()
  assert log.startswith(f'log: {tmp_path / "root" / "logs"}/')
  assert error.startswith(
    'error: split train, image_classification_builder-train.tfrecord-00001-of-00002 record 0 '
    '(roses/broken.jpg): not a decodable image (JPEG, PNG, GIF or BMP); 1 bad records in all '
    f'(listed in {tmp_path / "root" / "data_check"}'
  )
  assert error.endswith('rerun with --bad-images skip to drop and count them.')
  assert '[1/' not in captured.out  # no component started
  assert _tree(str(tmp_path / 'root' / 'serving_model')) == before
  rerun = results.latest_run(config.metadata_path, config.pipeline_name)
  assert {node: r.state for node, r in rerun.items()} == summary.states
