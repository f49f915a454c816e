"""preprocessing_fn: decoding, resizing, normalising, and class names from the data."""

import io

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from modules import features, labels
from modules.preprocessing import decode_and_resize
from tests.conftest import IMAGE_SIZE, read_examples


def _encode(image: Image.Image, fmt: str) -> bytes:
  buf = io.BytesIO()
  image.save(buf, format=fmt)
  return buf.getvalue()


def test_transformed_images_have_shape_dtype_and_range(transformed):
  _, files, _ = transformed
  rows = read_examples(files['train'][0])
  assert len(rows) == 30
  pixels = np.array(rows[0][features.IMAGE].float_list.value)
  assert pixels.size == IMAGE_SIZE * IMAGE_SIZE * 3
  assert 0.0 <= pixels.min() and pixels.max() <= 1.0
  assert pixels.std() > 0.01  # a real picture, not a blank
  assert {r[features.LABEL].int64_list.value[0] for r in rows} == {0, 1, 2, 3, 4}


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
