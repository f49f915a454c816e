"""The data folder is read as published splits or hash-split, and bad folders fail early."""

import pytest

from tfx_pipeline.data_folder import layout as data_layout


def _touch(folder, *names):
  for name in names:
    (folder / name).write_bytes(b'')


def test_published_layout_gives_train_validation_and_test_as_train_eval_and_test(tmp_path):
  _touch(
    tmp_path,
    'image_classification_builder-train.tfrecord-00000-of-00002',
    'image_classification_builder-train.tfrecord-00001-of-00002',
    'image_classification_builder-validation.tfrecord-00000-of-00001',
    'image_classification_builder-test.tfrecord-00000-of-00001',
  )
  layout = data_layout.find_splits(str(tmp_path))
  splits = {s.name: s.pattern for s in layout.input_config.splits}
  assert splits == {
    'train': 'image_classification_builder-train.tfrecord-*',
    'eval': 'image_classification_builder-validation.tfrecord-*',
    'test': 'image_classification_builder-test.tfrecord-*',
  }
  assert layout.output_config is None
  assert layout.evaluated_split == 'test'  # The Evaluator's alone.
  assert layout.description.endswith(f'2 train, 1 validation and 1 test shards in {tmp_path}')


def test_published_layout_without_test_shards_is_evaluated_on_eval(tmp_path):
  _touch(
    tmp_path,
    'image_classification_builder-train.tfrecord-00000-of-00001',
    'image_classification_builder-validation.tfrecord-00000-of-00001',
  )
  layout = data_layout.find_splits(str(tmp_path))
  assert [s.name for s in layout.input_config.splits] == ['train', 'eval']
  assert layout.evaluated_split == 'eval' and 'no test shards' in layout.description


def test_other_tfrecords_are_hash_split_80_10_10(tmp_path):
  _touch(tmp_path, 'image_classification_builder-test.tfrecord-00000-of-00001', 'README.md')
  layout = data_layout.find_splits(str(tmp_path))
  (split,) = layout.input_config.splits
  assert split.pattern == 'image_classification_builder-*.tfrecord-*'
  buckets = {s.name: s.hash_buckets for s in layout.output_config.split_config.splits}
  assert buckets == {'train': 8, 'eval': 1, 'test': 1}
  assert layout.evaluated_split == 'test'


def test_missing_folder_is_one_clear_error(tmp_path):
  with pytest.raises(data_layout.DataLayoutError, match='--data-root .*missing is not a folder'):
    data_layout.find_splits(str(tmp_path / 'missing'))


def test_folder_without_tfrecords_is_one_clear_error(tmp_path):
  _touch(tmp_path, 'photo.jpg')
  with pytest.raises(data_layout.DataLayoutError, match='holds no TFRecord files'):
    data_layout.find_splits(str(tmp_path))


def _tfrecord(path, *payloads):
  import tensorflow as tf

  with tf.io.TFRecordWriter(str(path)) as writer:
    for payload in payloads:
      writer.write(payload)


def test_empty_folder_is_one_clear_error(tmp_path):
  with pytest.raises(
    data_layout.DataLayoutError, match='is empty: put flower TFRecords there, or convert photos'
  ):
    data_layout.find_splits(str(tmp_path))


def test_folder_of_photo_folders_points_to_the_converter(tmp_path):
  (tmp_path / 'roses').mkdir()
  _touch(tmp_path / 'roses', 'a.jpg')
  with pytest.raises(
    data_layout.DataLayoutError, match='has sub-folders: .*python -m data.convert --data-root'
  ):
    data_layout.find_splits(str(tmp_path))


@pytest.mark.parametrize('present,missing', [('train', 'validation'), ('validation', 'train')])
def test_published_split_without_its_partner_is_one_clear_error(tmp_path, present, missing):
  _touch(
    tmp_path,
    f'image_classification_builder-{present}.tfrecord-00000-of-00001',
    'image_classification_builder-test.tfrecord-00000-of-00001',
  )
  with pytest.raises(
    data_layout.DataLayoutError,
    match=f'has {present} shards but no {missing} shards '
    f'\\(image_classification_builder-{missing}.tfrecord-\\*\\)',
  ):
    data_layout.find_splits(str(tmp_path))


@pytest.mark.parametrize('content', [b'\xff\xd8\xff\xe0 a JPEG photo', b'abc'])
def test_non_tfrecord_file_among_the_shards_is_named(tmp_path, content):
  _tfrecord(tmp_path / 'image_classification_builder-train.tfrecord-00000-of-00002', b'x')
  bad = tmp_path / 'image_classification_builder-train.tfrecord-00001-of-00002'
  bad.write_bytes(content)
  _tfrecord(tmp_path / 'image_classification_builder-validation.tfrecord-00000-of-00001', b'y')
  with pytest.raises(data_layout.DataLayoutError, match=f'^{bad} is not a TFRecord file'):
    data_layout.find_splits(str(tmp_path))


def test_layout_lists_the_files_of_each_split(tmp_path):
  _tfrecord(tmp_path / 'image_classification_builder-train.tfrecord-00000-of-00001', b'x')
  _tfrecord(tmp_path / 'image_classification_builder-validation.tfrecord-00000-of-00001', b'y')
  _tfrecord(tmp_path / 'image_classification_builder-test.tfrecord-00000-of-00001', b't')
  (tmp_path / 'labels.txt').write_text('roses\n')  # Not a shard: not read.
  layout = data_layout.find_splits(str(tmp_path))
  assert layout.split_files == {
    'train': (str(tmp_path / 'image_classification_builder-train.tfrecord-00000-of-00001'),),
    'eval': (str(tmp_path / 'image_classification_builder-validation.tfrecord-00000-of-00001'),),
    'test': (str(tmp_path / 'image_classification_builder-test.tfrecord-00000-of-00001'),),
  }
  other = tmp_path / 'other'
  other.mkdir()
  _tfrecord(other / 'photos.tfrecord', b'z')
  found = data_layout.find_splits(str(other)).split_files
  assert found == {'all': (str(other / 'photos.tfrecord'),)}
