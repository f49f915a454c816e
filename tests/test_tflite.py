"""The TFLite step's helpers: the resize a device app mirrors, the figures and the verdict."""

import numpy as np
import pytest
import tensorflow as tf

from modules.model import tflite
from tfx_pipeline import tflite_export


@pytest.mark.parametrize('shape, size', [((37, 53, 3), 8), ((37, 53, 3), 32), ((20, 20, 3), 64)])
def test_the_device_resize_is_transforms_bilinear(shape, size):
  pixels = np.random.default_rng(0).uniform(0, 255, shape).astype(np.float32)
  np.testing.assert_allclose(
    tflite.bilinear(pixels, size), tf.image.resize(pixels, [size, size]).numpy(), atol=1e-3
  )


def test_a_photo_a_device_decodes_is_rgb_in_the_unit_range():
  gray = tf.io.encode_png(tf.fill([10, 14, 1], tf.constant(128, tf.uint8))).numpy()
  image = tflite.device_input(gray, 6)
  assert image.shape == (6, 6, 3) and image.dtype == np.float32
  np.testing.assert_allclose(image, 128 / 255, atol=1e-6)


def _check(saved: float, int8: float, pushed: bool) -> tflite_export.TFLiteCheck:
  return tflite_export.TFLiteCheck(
    split='test',
    examples=50,
    saved_model=tflite_export.Measured(saved, 29.74, 17.52),
    tflite=tflite_export.Measured(int8, 4.12, 5.11),
    max_drop=0.02,
    pushed=pushed,
  )


def test_the_summary_lines_give_both_models_figures():
  assert _check(0.78, 0.78, True).lines() == [
    'saved model: test accuracy 0.780, 29.7 MB, 17.5 ms/image on 1 thread',
    'tflite int8: 0.780 (+0.000), 4.1 MB, 5.1 ms/image on 1 thread',
  ]
  dropped = _check(0.78, 0.74, False)
  assert dropped.drop == pytest.approx(0.04)
  assert dropped.lines()[1] == (
    'tflite int8: 0.740 (-0.040), 4.1 MB, 5.1 ms/image on 1 thread; not pushed: 0.040 below '
    'the SavedModel, more than --max-tflite-drop 0.02'
  )


@pytest.mark.pipeline  # Starts processes: one cold, one from the warm-start server.
def test_latency_is_measured_in_a_process_of_its_own_started_cold_or_warm(tmp_path, monkeypatch):
  from modules.model import latency
  from tests import runs
  from tfx_pipeline import warm_start

  module = tf.Module()
  module.image_probabilities = tf.function(
    lambda images: tf.nn.softmax(tf.reduce_mean(images, axis=[1, 2])),
    input_signature=[tf.TensorSpec([None, 8, 8, 3], tf.float32)],
  )
  tf.saved_model.save(module, str(tmp_path / 'model'))
  monkeypatch.delenv(warm_start.ADDRESS_ENV, raising=False)
  assert tflite_export._warm_runner() is None  # A plain run: a new `python`.
  cold = latency.measure(str(tmp_path / 'model'), None)
  monkeypatch.setenv(warm_start.ADDRESS_ENV, runs.warm_address())
  warm = latency.measure(str(tmp_path / 'model'), None, tflite_export._warm_runner())
  assert set(cold) == set(warm) == {'saved_model_ms'}
  assert 0 < cold['saved_model_ms'] < 1000 and 0 < warm['saved_model_ms'] < 1000
  with pytest.raises(RuntimeError, match=r'^measuring latency failed \(exit 1\): \S'):
    latency.measure(str(tmp_path / 'missing'), None, tflite_export._warm_runner())
