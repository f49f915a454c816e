"""The data folder is read as published splits or hash-split, and bad folders fail early."""
import pytest

from tfx_pipeline import data_layout


def _touch(folder, *names):
  for name in names:
    (folder / name).write_bytes(b'')


def test_published_layout_gives_train_and_validation_as_train_and_eval(tmp_path):
  _touch(tmp_path, 'image_classification_builder-train.tfrecord-00000-of-00002',
         'image_classification_builder-train.tfrecord-00001-of-00002',
         'image_classification_builder-validation.tfrecord-00000-of-00001',
         'image_classification_builder-test.tfrecord-00000-of-00001')
  layout = data_layout.resolve(str(tmp_path))
  splits = {s.name: s.pattern for s in layout.input_config.splits}
  assert splits == {'train': 'image_classification_builder-train.tfrecord-*',
                    'eval': 'image_classification_builder-validation.tfrecord-*'}
  assert layout.output_config is None


def test_other_tfrecords_are_hash_split_80_20(tmp_path):
  _touch(tmp_path, 'image_classification_builder-test.tfrecord-00000-of-00001', 'README.md')
  layout = data_layout.resolve(str(tmp_path))
  (split,) = layout.input_config.splits
  assert split.pattern == 'image_classification_builder-*.tfrecord-*'
  buckets = {s.name: s.hash_buckets for s in layout.output_config.split_config.splits}
  assert buckets == {'train': 4, 'eval': 1}


def test_missing_folder_is_one_clear_error(tmp_path):
  with pytest.raises(data_layout.DataLayoutError, match='--data-root .*missing is not a folder'):
    data_layout.resolve(str(tmp_path / 'missing'))


def test_folder_without_tfrecords_is_one_clear_error(tmp_path):
  _touch(tmp_path, 'photo.jpg')
  with pytest.raises(data_layout.DataLayoutError, match='holds no TFRecord files'):
    data_layout.resolve(str(tmp_path))
