"""preprocessing_fn: decoding, resizing, normalising, and class names from the data."""

import io
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from modules import features, image_codec, labels
from modules.preprocessing import decode_and_resize
from tests.conftest import read_examples
from tests.tiny import MODULE


def _encode(image: Image.Image, fmt: str) -> bytes:
  buf = io.BytesIO()
  image.save(buf, format=fmt)
  return buf.getvalue()


def _float_path(encoded, size):
  """The pixels as float32 with no uint8 step: decode, resize, scale."""
  return (tf.image.resize(image_codec.decode(encoded), [size, size]) / 255.0).numpy()


def test_transformed_images_are_stored_as_uint8_pixels(transformed):
  _, files, _ = transformed
  rows = read_examples(files['train'][0])
  assert len(rows) == 30
  (stored,) = rows[0][features.IMAGE].bytes_list.value
  # The pixels and a short header, a quarter of float32's 4 bytes a value.
  assert len(stored) < MODULE.image_size * MODULE.image_size * 3 + 32
  pixels = tf.io.parse_tensor(stored, tf.uint8).numpy()
  assert pixels.shape == (MODULE.image_size, MODULE.image_size, 3) and pixels.dtype == np.uint8
  assert pixels.std() > 2  # a real picture, not a blank
  assert {r[features.LABEL].int64_list.value[0] for r in rows} == {0, 1, 2, 3, 4}


def test_stored_images_read_back_within_half_a_step_of_the_float_path(transformed, tiny_data):
  """Transform's uint8 pixels, read as the model reads them, against float32 never rounded."""
  _, files, _ = transformed
  raw = read_examples(os.path.join(tiny_data, '*-train.tfrecord-*'))
  expected = np.stack(
    [_float_path(r[features.IMAGE_KEY].bytes_list.value[0], MODULE.image_size) for r in raw]
  )
  stored = [r[features.IMAGE].bytes_list.value[0] for r in read_examples(files['train'][0])]
  read_back = image_codec.model_input(tf.constant(stored), MODULE.image_size).numpy()
  assert read_back.dtype == np.float32 and len(read_back) == len(expected)
  # Each stored image is one of the raw ones (Beam need not keep their order).
  errors = np.abs(read_back[:, None] - expected[None]).max(axis=(2, 3, 4))
  assert errors.min(axis=1).max() <= 0.5 / 255 + 1e-6
  assert sorted(errors.argmin(axis=1)) == list(range(len(expected)))


@pytest.mark.parametrize('fmt', ['JPEG', 'PNG'])
def test_uint8_round_trip_is_the_float_path_within_half_a_step(fmt):
  rng = np.random.default_rng(0)
  photo = _encode(Image.fromarray(rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)), fmt)
  stored = image_codec.encode(image_codec.decode_resize(tf.constant([photo]), 24))
  read_back = image_codec.model_input(stored, 24).numpy()[0]
  error = np.abs(read_back - _float_path(photo, 24)).max()
  assert 0 < error <= 0.5 / 255 + 1e-6
  np.testing.assert_array_equal(read_back, decode_and_resize(tf.constant([photo]), 24).numpy()[0])


def test_class_names_come_from_the_data_in_label_order(transformed):
  import tensorflow_transform as tft

  transform_dir, _, _ = transformed
  names = labels.class_names(tft.TFTransformOutput(transform_dir))
  assert names == ['roses', 'sunflowers', 'daisy', 'dandelion', 'tulips']


@pytest.mark.parametrize(
  'mode,fmt',
  [('RGB', 'JPEG'), ('L', 'JPEG'), ('CMYK', 'JPEG'), ('RGB', 'PNG'), ('P', 'GIF'), ('RGB', 'BMP')],
)
def test_decode_gives_three_channels_in_unit_range(mode, fmt):
  gradient = np.linspace(0, 255, 40 * 60 * 3).reshape(40, 60, 3).astype(np.uint8)
  image = Image.fromarray(gradient).convert(mode)
  out = decode_and_resize(tf.constant([_encode(image, fmt)]), 24).numpy()
  assert out.shape == (1, 24, 24, 3) and out.dtype == np.float32
  assert 0.0 <= out.min() and out.max() <= 1.0 and out.max() > 0.5


def test_resize_keeps_colour():
  red = Image.new('RGB', (50, 30), (255, 0, 0))
  out = decode_and_resize(tf.constant([_encode(red, 'PNG')]), 16).numpy()[0]
  np.testing.assert_allclose(out.mean(axis=(0, 1)), [1.0, 0.0, 0.0], atol=0.02)


class _Vocab:
  def __init__(self, entries):
    self._entries = [e.encode() for e in entries]

  def vocabulary_by_name(self, name):
    assert name == features.LABEL_NAMES_VOCAB
    return self._entries


def test_class_names_reject_one_id_with_two_names():
  with pytest.raises(ValueError, match='label 0 has several class names'):
    labels.class_names(_Vocab(['0:roses', '0:tulips', '1:daisy']))


def test_class_names_reject_gaps_in_label_ids():
  with pytest.raises(ValueError, match=r'0..K-1; found \[0, 2\]'):
    labels.class_names(_Vocab(['0:roses', '2:daisy']))


def test_class_names_follow_ids_not_vocabulary_order():
  assert labels.class_names(_Vocab(['2:c', '0:a', '1:b'])) == ['a', 'b', 'c']
