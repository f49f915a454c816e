"""data_check: every record is read before the pipeline; bad images fail or are skipped and
counted, label problems always fail, and nothing bad reaches the pipeline's input."""

import io
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from data import records
from tests.conftest import read_examples
from tfx_pipeline.data_folder import check as data_check
from tfx_pipeline.data_folder import layout as data_layout

CLASSES = ['daisy', 'roses', 'tulips']


def _jpeg(seed):
  pixels = np.random.default_rng(seed).integers(0, 255, (32, 32, 3), dtype=np.uint8)
  buf = io.BytesIO()
  Image.fromarray(pixels).save(buf, format='JPEG')
  return buf.getvalue()


GOOD = _jpeg(0)
BAD_IMAGES = {'truncated': GOOD[: len(GOOD) // 2], 'random': bytes(range(200)), 'zero': b''}


def _example(name, label, image=GOOD, text=None, drop=()):
  raw = records.to_example(name, label, text or CLASSES[label], image, 32, 32)
  if not drop:
    return raw
  example = tf.train.Example.FromString(raw)
  for key in drop:
    del example.features.feature[key]
  return example.SerializeToString()


def _good(split, n=3):
  return [_example(f'{CLASSES[i % 3]}/{split}_{i}.jpg', i % 3) for i in range(n)]


def write_folder(folder, train, validation, labels=True):
  folder.mkdir(exist_ok=True)
  for split, rows in (('train', train), ('validation', validation)):
    with tf.io.TFRecordWriter(str(folder / records.shard_name(split, 0, 1))) as writer:
      for raw in rows:
        writer.write(raw)
  if labels:
    (folder / 'labels.txt').write_text(''.join(f'{c}\n' for c in CLASSES))
  return str(folder)


def run_check(data_root, pipeline_root, policy='fail'):
  lines = []
  checked = data_check.check(
    data_root,
    data_layout.find_splits(data_root),
    str(pipeline_root),
    bad_images=policy,
    echo=lines.append,
  )
  return checked, lines


def _with_bad_images(tmp_path):
  train = _good('train', 4)
  train.insert(2, _example('roses/truncated.jpg', 1, BAD_IMAGES['truncated']))
  train.append(_example('daisy/zero.jpg', 0, BAD_IMAGES['zero']))
  validation = _good('validation') + [_example('tulips/random.jpg', 2, BAD_IMAGES['random'])]
  return write_folder(tmp_path / 'data', train, validation)


def test_clean_data_is_read_in_place_and_checked_once(tmp_path):
  data_root = write_folder(tmp_path / 'data', _good('train', 6), _good('validation'))
  checked, lines = run_check(data_root, tmp_path / 'root')
  assert checked == (data_root, 9)
  assert lines == ['data check: 9 records in 2 files, every image decodes']
  _, again = run_check(data_root, tmp_path / 'root')
  assert again == [
    'data check: 9 records in 2 files (read back from an earlier check of '
    'these files), every image decodes'
  ]


def test_bad_images_fail_by_default_naming_split_file_and_record(tmp_path):
  data_root = _with_bad_images(tmp_path)
  with pytest.raises(data_check.DataCheckError) as e:
    run_check(data_root, tmp_path / 'root')
  message = str(e.value)
  assert message.startswith(
    'split eval, image_classification_builder-validation.tfrecord-00000-of-00001 record 3 '
    '(tulips/random.jpg): not a decodable image (JPEG, PNG, GIF or BMP); 3 bad records in all'
  )
  assert message.endswith('rerun with --bad-images skip to drop and count them.')
  assert '\n' not in message


def test_skip_drops_and_counts_bad_images_and_the_pipeline_reads_a_clean_copy(tmp_path):
  data_root = _with_bad_images(tmp_path)
  (folder, kept), lines = run_check(data_root, tmp_path / 'root', policy='skip')
  assert folder.startswith(str(tmp_path / 'root' / 'data_check')) and kept == 7
  assert lines[0] == 'data check: 10 records in 2 files, 3 with bad images'
  assert lines[1] == (
    'data check: skipping 3 records with bad images (--bad-images skip): eval 1, train 2'
  )
  assert (
    '  skipped split train, image_classification_builder-train.tfrecord-00000-of-00001 '
    'record 2 (roses/truncated.jpg): not a decodable image (JPEG, PNG, GIF or BMP)'
  ) in lines
  assert (
    '  skipped split train, image_classification_builder-train.tfrecord-00000-of-00001 '
    'record 5 (daisy/zero.jpg): empty image (0 bytes)'
  ) in lines
  kept = {
    split: [
      f['image/filename'].bytes_list.value[0].decode()
      for f in read_examples(os.path.join(folder, f'*-{split}.tfrecord-*'))
    ]
    for split in ('train', 'validation')
  }
  assert kept == {
    'train': [f'{CLASSES[i % 3]}/train_{i}.jpg' for i in range(4)],
    'validation': [f'{CLASSES[i % 3]}/validation_{i}.jpg' for i in range(3)],
  }
  layout = data_layout.find_splits(folder)
  assert sorted(layout.split_files) == ['eval', 'train']
  # The original is untouched, and a rerun reuses the copy as it is (TFX's cache sees the same
  # files).
  assert len(read_examples(os.path.join(data_root, '*-train.tfrecord-*'))) == 6
  mtimes = {n: os.stat(os.path.join(folder, n)).st_mtime_ns for n in os.listdir(folder)}
  again, _ = run_check(data_root, tmp_path / 'root', policy='skip')
  assert again.data_root == folder
  assert mtimes == {n: os.stat(os.path.join(folder, n)).st_mtime_ns for n in os.listdir(folder)}


def test_a_record_that_is_not_an_example_follows_the_policy(tmp_path):
  data_root = write_folder(
    tmp_path / 'data', _good('train') + [b'\x01\x02not a proto'], _good('validation')
  )
  with pytest.raises(
    data_check.DataCheckError,
    match=r'^split train, .*train.tfrecord-00000-of-00001 record 3: not a '
    r'tf.train.Example; 1 bad records in all',
  ):
    run_check(data_root, tmp_path / 'root')


@pytest.mark.parametrize(
  'bad_record,labels,message',
  [
    (
      _example('roses/x.jpg', 1, drop=['image/class/label']),
      True,
      r'^split train, .*train.tfrecord-00000-of-00001 record 3 \(roses/x.jpg\) has no '
      r'image/class/label: every record needs',
    ),
    (
      _example('roses/x.jpg', 1, drop=['image/class/text']),
      True,
      r'^split train, .* record 3 \(roses/x.jpg\) has no image/class/text',
    ),
    (
      _example('lilies/x.jpg', 3, text='lilies'),
      True,
      r'^split train, .* record 3 \(lilies/x.jpg\) has label 3, outside 0..2 \(the 3 lines of '
      r'labels.txt\): fix the label',
    ),
    (
      _example('roses/x.jpg', 7, text='roses'),
      False,
      r'has label 7, outside 0..2 \(the 3 class names in the data\)',
    ),
    (
      _example('roses/x.jpg', 0, text='roses'),
      False,
      r'^label 0 has several class names \(daisy, roses\), e.g. split',
    ),
    (_example('roses/x.jpg', 0, text='roses'), True, r'label 0 has several class names'),
  ],
)
def test_label_problems_always_fail_with_the_record_named(tmp_path, bad_record, labels, message):
  data_root = write_folder(
    tmp_path / 'data', _good('train') + [bad_record], _good('validation'), labels=labels
  )
  for policy in data_check.BAD_IMAGE_POLICIES:
    with pytest.raises(data_check.DataCheckError, match=message):
      run_check(data_root, tmp_path / 'root', policy)


def test_labels_must_match_labels_file_and_train_must_cover_every_class(tmp_path):
  renamed = [_example('daisy/a.jpg', 0, text='bellis'), _example('roses/b.jpg', 1)]
  data_root = write_folder(
    tmp_path / 'a', renamed + [_example('tulips/c.jpg', 2)], [_example('tulips/v.jpg', 2)]
  )
  with pytest.raises(
    data_check.DataCheckError,
    match=r"record 0 \(daisy/a.jpg\) names label 0 'bellis', but labels.txt "
    r"says 'daisy'",
  ):
    run_check(data_root, tmp_path / 'root')
  data_root = write_folder(tmp_path / 'b', _good('train', 2), _good('validation'))
  with pytest.raises(
    data_check.DataCheckError,
    match=r'^split train has no records of label 2 \(tulips\), one of 0..2',
  ):
    run_check(data_root, tmp_path / 'root')


def test_a_split_left_empty_and_a_corrupt_tail_fail(tmp_path):
  data_root = write_folder(
    tmp_path / 'a', _good('train'), [_example('roses/z.jpg', 1, BAD_IMAGES['zero'])]
  )
  with pytest.raises(
    data_check.DataCheckError,
    match=r'^split eval of --data-root .* has no '
    r'usable records',
  ):
    run_check(data_root, tmp_path / 'root', policy='skip')
  data_root = write_folder(tmp_path / 'b', _good('train'), _good('validation'))
  shard = os.path.join(data_root, records.shard_name('train', 0, 1))
  with open(shard, 'r+b') as f:
    f.truncate(os.path.getsize(shard) - 10)
  with pytest.raises(
    data_check.DataCheckError, match=r'train.tfrecord-00000-of-00001 is corrupt from record 2 on'
  ):
    run_check(data_root, tmp_path / 'root', policy='skip')


def test_unknown_policy_is_refused(tmp_path):
  data_root = write_folder(tmp_path / 'data', _good('train'), _good('validation'))
  with pytest.raises(ValueError, match='--bad-images ignore: choose one of fail, skip'):
    run_check(data_root, tmp_path / 'root', policy='ignore')


def test_runner_flag_sets_the_policy(tmp_path):
  from tfx_pipeline.local import cli

  parse = cli.run_parser().parse_args
  assert cli.config_from_args(parse([])).bad_images == 'fail'
  assert cli.config_from_args(parse(['--bad-images', 'skip'])).bad_images == 'skip'
  with pytest.raises(SystemExit):
    parse(['--bad-images', 'ignore'])
