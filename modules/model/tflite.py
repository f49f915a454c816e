"""The TensorFlow Lite model a phone runs: full-integer int8, converted from the serving model.

The TFLiteExport step (tfx_pipeline/tflite_export.py) converts the Trainer's
SavedModel with `convert` and checks it with `Classifier`; `run_local.py predict
--tflite` classifies photos with `Classifier` and `device_input`.

TFLite has no JPEG decoder, so the model takes what the SavedModel's
`image_probabilities` takes: a decoded [1, size, size, 3] float32 image in
[0, 1]. Weights and activations are int8 (calibrated on sample images); input
and output stay float32, so callers need no quantization parameters. The output
is the calibrated probabilities, as the SavedModel's `probabilities`.
"""

from __future__ import annotations

import io
from typing import Callable, Iterable

import numpy as np
import tensorflow as tf

TFLITE_FILE = 'model.tflite'
# One class name per line, in class-id order: what TFLite's Task Library and
# most device apps read beside the model.
LABELS_FILE = 'labels.txt'


def convert(loaded, sample_images: np.ndarray) -> bytes:
  """The int8 TFLite model of a loaded serving SavedModel's `image_probabilities`.

  `loaded` is what `tf.saved_model.load` returned (the caller's own copy: a
  load of the serving model takes seconds). `sample_images` ([N, size, size, 3]
  in [0, 1]) calibrate the ranges of the activations. Every op must have an int8
  kernel: a float fallback would make the model silently slower and larger than
  it says.
  """
  function = loaded.image_probabilities.get_concrete_function()
  converter = tf.lite.TFLiteConverter.from_concrete_functions([function], loaded)
  converter.optimizations = [tf.lite.Optimize.DEFAULT]
  converter.representative_dataset = lambda: ([image[None]] for image in sample_images)
  converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
  converter.inference_input_type = tf.float32
  converter.inference_output_type = tf.float32
  return converter.convert()


class Classifier:
  """Runs a TFLite classifier one image at a time (batch 1, as a phone does)."""

  def __init__(self, model: bytes, threads: int = 1):
    self._interpreter = tf.lite.Interpreter(model_content=model, num_threads=threads)
    self._interpreter.allocate_tensors()
    self._input = self._interpreter.get_input_details()[0]
    self._output = self._interpreter.get_output_details()[0]

  @property
  def image_size(self) -> int:
    return int(self._input['shape'][1])

  def probabilities(self, images: Iterable[np.ndarray]) -> np.ndarray:
    """[N, K] probabilities of [size, size, 3] images in [0, 1]."""
    return np.stack([self.one(image) for image in images])

  def one(self, image: np.ndarray) -> np.ndarray:
    self._interpreter.set_tensor(self._input['index'], image[None].astype(np.float32))
    self._interpreter.invoke()
    return self._interpreter.get_tensor(self._output['index'])[0]


def device_input(encoded: bytes, image_size: int) -> np.ndarray:
  """A photo as a device app feeds the model: decoded to RGB, resized, in [0, 1].

  Pillow decodes (a phone has no TensorFlow ops) with the accurate integer DCT
  Transform decodes JPEGs with (image_codec), and the resize is `bilinear`'s, as
  Transform's: the pixels training saw, give or take one level in a few. Pillow's
  own BILINEAR averages over the whole footprint when it shrinks, which moved
  pixels of a 32-px image by 12 levels on average.
  """
  from PIL import Image

  with Image.open(io.BytesIO(encoded)) as photo:
    rgb = np.asarray(photo.convert('RGB'), np.float32)
  return np.clip(np.round(bilinear(rgb, image_size)), 0, 255) / 255.0


def bilinear(pixels: np.ndarray, size: int) -> np.ndarray:
  """[H, W, C] -> [size, size, C] as `tf.image.resize(..., 'bilinear')`: half-pixel centres,
  the two nearest rows and columns, no antialiasing."""

  def taps(length: int):
    source = np.clip((np.arange(size) + 0.5) * (length / size) - 0.5, 0, length - 1)
    low = np.floor(source).astype(int)
    return low, np.minimum(low + 1, length - 1), (source - low).astype(np.float32)

  y0, y1, fy = taps(pixels.shape[0])
  x0, x1, fx = taps(pixels.shape[1])
  fx = fx[None, :, None]
  rows = lambda y: pixels[y][:, x0] * (1 - fx) + pixels[y][:, x1] * fx  # noqa: E731
  return rows(y0) * (1 - fy)[:, None, None] + rows(y1) * fy[:, None, None]


def median_ms(call: Callable[[], object], runs: int = 50, warmup: int = 5) -> float:
  """Median wall time of `call()` in milliseconds, after `warmup` untimed calls."""
  import time

  for _ in range(warmup):
    call()
  times = []
  for _ in range(runs):
    start = time.perf_counter()
    call()
    times.append(time.perf_counter() - start)
  return 1000.0 * float(np.median(times))
