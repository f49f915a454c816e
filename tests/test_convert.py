"""data.convert: photo folders -> flower TFRecords, broken files skipped and named."""

import io
import json
import os
import tarfile

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from data import conversion, convert, images, photos, records
from modules.preprocessing import decode_and_resize
from tests.conftest import read_examples
from tfx_pipeline.data_folder import layout as data_layout

COLOURS = {'daisy': (240, 240, 240), 'roses': (200, 20, 40), 'tulips': (220, 60, 170)}
SCHEMA = {
  'image/encoded',
  'image/class/label',
  'image/class/text',
  'image/filename',
  'image/format',
  'image/colorspace',
  'image/channels',
  'image/height',
  'image/width',
}


def _encode(image, fmt, **kwargs):
  buf = io.BytesIO()
  image.save(buf, format=fmt, **kwargs)
  return buf.getvalue()


def make_photo_folder(root, per_class=6, seed=0):
  """Class folders of small noisy single-colour JPEGs, as a user's photo folder."""
  rng = np.random.default_rng(seed)
  for name, colour in COLOURS.items():
    os.makedirs(root / name)
    for i in range(per_class):
      pixels = (np.array(colour) + rng.normal(0, 12, (32, 32, 3))).clip(0, 255).astype(np.uint8)
      (root / name / f'{name}_{i}.jpg').write_bytes(_encode(Image.fromarray(pixels), 'JPEG'))
  return root


# Odd files and what the converter does with each: None = converted, else the skip reason.
ODD_FILES = {
  'roses/png_named.jpg': None,
  'roses/gif_named.jpg': None,
  'tulips/bmp_named.jpg': None,
  'tulips/grayscale.jpg': None,
  'daisy/cmyk.jpg': None,
  'daisy/nested/deeper.jpg': None,
  'roses/truncated.jpg': 'truncated or corrupt JPEG',
  'tulips/zero.jpg': 'empty file (0 bytes)',
  'daisy/random.jpg': 'not an image: TensorFlow reads JPEG, PNG, GIF and BMP',
  'daisy/.DS_Store': 'not an image: TensorFlow reads JPEG, PNG, GIF and BMP',
}


def add_odd_files(root):
  red = Image.new('RGB', (20, 30), (255, 0, 0))
  whole = (root / 'roses' / 'roses_0.jpg').read_bytes()
  content = {
    'roses/png_named.jpg': _encode(red, 'PNG'),
    'roses/gif_named.jpg': _encode(red.convert('P'), 'GIF'),
    'tulips/bmp_named.jpg': _encode(red, 'BMP'),
    'tulips/grayscale.jpg': _encode(Image.new('L', (24, 16), 128), 'JPEG'),
    'daisy/cmyk.jpg': _encode(red.convert('CMYK'), 'JPEG', quality=95),
    'daisy/nested/deeper.jpg': whole,
    'roses/truncated.jpg': whole[: len(whole) // 2],
    'tulips/zero.jpg': b'',
    'daisy/random.jpg': np.random.default_rng(1).bytes(400),
    'daisy/.DS_Store': b'\x00\x00\x00\x01Bud1',
  }
  for relpath, data in content.items():
    (root / relpath).parent.mkdir(exist_ok=True)
    (root / relpath).write_bytes(data)
  (root / 'LICENSE.txt').write_text('photos by ...')


@pytest.fixture(scope='module')
def converted(tmp_path_factory):
  """One conversion of a 3-class folder with odd and broken files; returns (photos, out, result)."""
  root = make_photo_folder(tmp_path_factory.mktemp('photos'))
  add_odd_files(root)
  out = tmp_path_factory.mktemp('out')
  stale = out / records.shard_name('train', 3, 9)  # From an earlier conversion.
  stale.write_bytes(b'old')
  lines = []
  result = conversion.convert(
    str(root),
    str(out),
    ratios={'train': 0.5, 'validation': 0.25, 'test': 0.25},
    overwrite=True,
    echo=lines.append,
  )
  return root, out, result, lines


def _records(out, split='*'):
  return read_examples(str(out / f'image_classification_builder-{split}.tfrecord-*'))


def test_summary_counts_and_names_skipped_files(converted):
  root, out, result, lines = converted
  expected_skips = sorted((p, r) for p, r in ODD_FILES.items() if r)
  assert sorted(result['skipped']) == expected_skips
  assert result['classes'] == ['daisy', 'roses', 'tulips']
  counts = result['counts']
  # 6 photos per class + the odd files that decode.
  per_class = {c: sum(counts[s][c] for s in records.SPLITS) for c in COLOURS}
  assert per_class == {'daisy': 8, 'roses': 8, 'tulips': 8}
  assert len(_records(out)) == 24
  for split in records.SPLITS:
    assert len(_records(out, split)) == sum(counts[split].values())
  text = '\n'.join(lines)
  assert 'skipped 4 of 28 files, ignored 1 outside class folders:' in text
  assert '  roses/truncated.jpg: truncated or corrupt JPEG' in text
  assert '  LICENSE.txt: not in a class folder' in text
  metadata = json.loads((out / 'metadata.json').read_text())
  assert metadata['counts'] == counts
  assert {s['file'] for s in metadata['skipped']} == {p for p, _ in expected_skips}


def test_labels_file_lists_sorted_classes_and_records_agree(converted):
  _, out, _, _ = converted
  names = (out / 'labels.txt').read_text().splitlines()
  assert names == ['daisy', 'roses', 'tulips']
  for f in _records(out):
    label = f['image/class/label'].int64_list.value[0]
    assert f['image/class/text'].bytes_list.value[0].decode() == names[label]
    assert f['image/filename'].bytes_list.value[0].decode().startswith(names[label] + '/')


def test_every_record_is_an_rgb_jpeg_in_the_published_schema(converted):
  _, out, _, _ = converted
  rows = _records(out)
  for f in rows:
    assert set(f) == SCHEMA
    jpeg = f['image/encoded'].bytes_list.value[0]
    assert images.sniff_format(jpeg) == 'JPEG'
    assert list(tf.io.extract_jpeg_shape(jpeg).numpy()) == [
      f['image/height'].int64_list.value[0],
      f['image/width'].int64_list.value[0],
      3,
    ]
    assert f['image/format'].bytes_list.value[0] == b'JPEG'
    assert f['image/colorspace'].bytes_list.value[0] == b'RGB'
    assert f['image/channels'].int64_list.value[0] == 3
  # The pipeline's own decoder reads them all.
  batch = tf.constant([f['image/encoded'].bytes_list.value[0] for f in rows])
  assert decode_and_resize(batch, 32).shape == (len(rows), 32, 32, 3)


def test_rgb_jpegs_are_kept_and_other_images_reencoded_with_their_colours(converted):
  root, out, _, _ = converted
  by_name = {
    f['image/filename'].bytes_list.value[0].decode(): f['image/encoded'].bytes_list.value[0]
    for f in _records(out)
  }
  assert by_name['roses/roses_1.jpg'] == (root / 'roses' / 'roses_1.jpg').read_bytes()
  for relpath in (
    'roses/png_named.jpg',
    'roses/gif_named.jpg',
    'tulips/bmp_named.jpg',
    'daisy/cmyk.jpg',
  ):
    mean = tf.io.decode_jpeg(by_name[relpath]).numpy().reshape(-1, 3).mean(axis=0)
    np.testing.assert_allclose(mean, [255, 0, 0], atol=12, err_msg=relpath)
  gray = tf.io.decode_jpeg(by_name['tulips/grayscale.jpg']).numpy()
  assert gray.shape == (16, 24, 3) and abs(gray.mean() - 128) < 3


def test_splits_follow_the_path_hash_and_shards_read_as_train_eval_and_test(converted):
  _, out, _, _ = converted
  ratios = {'train': 0.5, 'validation': 0.25, 'test': 0.25}
  for split in records.SPLITS:
    for f in _records(out, split):
      assert photos.split_of(f['image/filename'].bytes_list.value[0].decode(), ratios) == split
  assert not (out / records.shard_name('train', 3, 9)).exists()  # the stale shard is gone
  assert not (out / '.convert-tmp').exists()
  layout = data_layout.find_splits(str(out))
  assert {s.name for s in layout.input_config.splits} == {'train', 'eval', 'test'}
  assert layout.evaluated_split == 'test'


def test_split_is_stable_and_near_the_ratios():
  ratios = {'train': 0.8, 'validation': 0.1, 'test': 0.1}
  paths = [f'class/{i}.jpg' for i in range(3000)]
  splits = [photos.split_of(p, ratios) for p in paths]
  assert splits == [photos.split_of(p, dict(ratios)) for p in paths]
  shares = {s: splits.count(s) / len(paths) for s in records.SPLITS}
  assert abs(shares['train'] - 0.8) < 0.03 and abs(shares['test'] - 0.1) < 0.03
  # A zero share gets nothing.
  assert 'test' not in {
    photos.split_of(p, {'train': 0.7, 'validation': 0.3, 'test': 0.0}) for p in paths
  }


def test_plan_depends_on_relative_paths_only(tmp_path):
  a = make_photo_folder(tmp_path / 'a')
  b = make_photo_folder(tmp_path / 'b', seed=5)
  (b / 'roses' / 'extra.jpg').write_bytes(b'')
  ratios = photos.DEFAULT_RATIOS
  plan_a = {p.relpath: (p.label, p.split) for p in photos.find_photos(str(a), ratios).photos}
  plan_b = {p.relpath: (p.label, p.split) for p in photos.find_photos(str(b), ratios).photos}
  assert set(plan_b) - set(plan_a) == {'roses/extra.jpg'}
  assert all(plan_b[k] == v for k, v in plan_a.items())


@pytest.mark.parametrize(
  'setup,kwargs,message',
  [
    (lambda root: None, {}, 'is not a folder: point it at a folder with one sub-folder'),
    (lambda root: root.mkdir(), {}, 'has no class sub-folders'),
    (lambda root: (root / 'roses').mkdir(parents=True), {}, 'class folder .*roses has no files'),
    (
      lambda root: make_photo_folder(root),
      {'ratios': {'train': 0.8, 'validation': 0.3, 'test': 0}},
      'use fractions >= 0 that sum to 1',
    ),
    (
      lambda root: make_photo_folder(root),
      {'ratios': {'train': 1.0, 'validation': 0, 'test': 0}},
      '--train and --validation must be above 0',
    ),
  ],
)
def test_unusable_input_is_one_clear_error(tmp_path, setup, kwargs, message):
  root = tmp_path / 'photos'
  setup(root)
  with pytest.raises(conversion.ConvertError, match=message):
    conversion.convert(str(root), str(tmp_path / 'out'), **kwargs)
  assert not (tmp_path / 'out').exists()


def test_existing_shards_need_overwrite_and_out_must_be_outside_the_photos(tmp_path):
  root = make_photo_folder(tmp_path / 'photos')
  out = tmp_path / 'out'
  out.mkdir()
  (out / records.shard_name('train', 0, 1)).write_bytes(b'')
  with pytest.raises(
    conversion.ConvertError, match='already holds 1 converted shards: pass --overwrite'
  ):
    conversion.convert(str(root), str(out))
  with pytest.raises(conversion.ConvertError, match='is inside --data-root'):
    conversion.convert(str(root), str(root / 'tfrecords'))


def test_dataflow_needs_cloud_paths_and_the_package(tmp_path):
  with pytest.raises(conversion.ConvertError, match='use gs:// paths'):
    conversion.convert(
      str(tmp_path / 'photos'), 'gs://bucket/out', beam_args=['--runner=DataflowRunner']
    )
  with pytest.raises(conversion.ConvertError, match='pass --sdk_container_image'):
    conversion.convert(
      'gs://bucket/photos', 'gs://bucket/out', beam_args=['--runner=DataflowRunner', '--project=p']
    )


def test_download_offline_is_one_line_pointing_to_data_root(tmp_path, capsys):
  rc = convert.main(
    [
      '--download',
      '--download-url',
      'http://127.0.0.1:9/flower_photos.tgz',
      '--out',
      str(tmp_path / 'out'),
    ]
  )
  err = capsys.readouterr().err
  assert rc == 2
  assert err.count('\n') == 1 and err.startswith('error: cannot download http://127.0.0.1:9/')
  assert 'offline?' in err and '--data-root PATH/flower_photos' in err
  assert not (tmp_path / 'flower_photos.tgz').exists()
  assert not (tmp_path / 'flower_photos.tgz.part').exists()


def test_download_unpacks_the_archive_and_converts_it(tmp_path, capsys):
  photos_dir = make_photo_folder(tmp_path / 'src' / 'flower_photos', per_class=2)
  (photos_dir / 'LICENSE.txt').write_text('CC-BY')
  archive = tmp_path / 'src' / 'flower_photos.tgz'
  with tarfile.open(archive, 'w:gz') as tar:
    tar.add(photos_dir, arcname='flower_photos')
  downloads = tmp_path / 'downloads'
  argv = [
    '--download',
    '--download-url',
    archive.as_uri(),
    '--download-dir',
    str(downloads),
    '--out',
    str(tmp_path / 'out'),
    '--train',
    '0.5',
    '--validation',
    '0.5',
    '--test',
    '0',
  ]
  assert convert.main(argv) == 0
  assert sorted(os.listdir(downloads / 'flower_photos')) == [
    'LICENSE.txt',
    'daisy',
    'roses',
    'tulips',
  ]
  assert len(_records(tmp_path / 'out')) == 6
  out = capsys.readouterr().out
  assert 'LICENSE.txt: not in a class folder' in out
  assert 'next: python run_local.py --data-root' in out


@pytest.mark.parametrize(
  'where,why',
  [('/proc/nope', 'cannot create or write this folder'), ('file', 'is a file, not a folder')],
)
def test_unusable_out_is_one_line_before_any_work(where, why, tmp_path, capsys):
  (tmp_path / 'file').write_text('x')
  out = where if where.startswith('/') else str(tmp_path / where)
  # With --download the check comes before anything is fetched.
  rc = convert.main(
    [
      '--download',
      '--download-url',
      'http://127.0.0.1:9/flower_photos.tgz',
      '--download-dir',
      str(tmp_path / 'downloads'),
      '--out',
      out,
    ]
  )
  err = capsys.readouterr().err
  assert rc == 2 and err.count('\n') == 1
  assert err.startswith(f'error: --out {out}: ') and why in err
  assert not (tmp_path / 'downloads').exists()
