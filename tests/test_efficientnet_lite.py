"""The built-in EfficientNet-Lite backbones: their weights are read and laid out right.

Evidence for each of Lite0, Lite1 and Lite2 on real photos (ImageNet's own
"daisy" class on the shared daisies) and a numpy re-computation of the first
layers from the raw file; one clear line for every bad weights file.
"""

import collections
import os
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf

from modules.backbones import efficientnet_lite, torch_checkpoint
from modules.module_config import PRETRAINED_BACKBONES
from tests.conftest import read_examples
from tests.torch_files import write_legacy

IMAGENET_DAISY = 985
FAMILY = sorted(PRETRAINED_BACKBONES)
# The published architectures: MBConv blocks, and the channels into the 1280-d head.
LAYOUT = {
  'efficientnet-lite0': (16, 320),
  'efficientnet-lite1': (21, 320),
  'efficientnet-lite2': (21, 352),
}


@pytest.fixture(scope='module', params=FAMILY)
def member(request):
  """(name, its state dict) for each member of the family."""
  return request.param, torch_checkpoint.load(efficientnet_lite.weights_path(request.param))


@pytest.fixture(scope='module')
def state():
  return torch_checkpoint.load(efficientnet_lite.weights_path())


@pytest.fixture(scope='module')
def shared_photos(shared_flowers):
  """(encoded JPEGs, class names) of the real shard."""
  examples = read_examples(os.path.join(shared_flowers, '*.tfrecord*'))
  encoded = tf.constant([e['image/encoded'].bytes_list.value[0] for e in examples])
  names = [e['image/class/text'].bytes_list.value[0].decode() for e in examples]
  return encoded, names


def test_checkpoint_has_the_published_layout(member):
  name, state = member
  blocks, head_in = LAYOUT[name]
  assert state['_conv_stem.weight'].shape == (32, 3, 3, 3)
  assert state['_conv_head.weight'].shape == (1280, head_in, 1, 1)
  assert state['_fc.weight'].shape == (1000, 1280)
  assert not any('_se_' in k for k in state)  # Lite: no squeeze-excite.
  assert len({k.split('.')[1] for k in state if k.startswith('_blocks.')}) == blocks
  # Every block's depth and width as the scaled stages say.
  built = [
    (kernel, filters)
    for repeats, kernel, _, _, filters in efficientnet_lite.stages(name)
    for _ in range(repeats)
  ]
  found = [
    (
      state[f'_blocks.{i}._depthwise_conv.weight'].shape[-1],
      state[f'_blocks.{i}._project_conv.weight'].shape[0],
    )
    for i in range(blocks)
  ]
  assert found == built


@pytest.mark.parametrize('name', FAMILY)
def test_imagenet_classifier_recognises_real_daisies(shared_photos, name):
  from modules.preprocessing import decode_and_resize

  encoded, names = shared_photos
  # Each at the size it was trained at, decoded as Transform decodes.
  images = decode_and_resize(encoded, PRETRAINED_BACKBONES[name]).numpy()
  model = efficientnet_lite.pretrained(PRETRAINED_BACKBONES[name], classifier=True, name=name)
  logits = model.predict(images, verbose=0)
  top5 = np.argsort(-logits, axis=1)[:, :5]
  daisies = [i for i, n in enumerate(names) if n == 'daisy']
  assert len(daisies) == 10
  assert sum(IMAGENET_DAISY in top5[i] for i in daisies) >= 8
  # A broken conversion sends every photo to one class; here only ImageNet's
  # daisy may take many (sunflowers look like daisies to ImageNet).
  others = collections.Counter(top5[i, 0] for i in range(len(names)) if names[i] != 'daisy')
  others.pop(IMAGENET_DAISY, None)
  assert max(others.values()) < 0.5 * sum(names[i] != 'daisy' for i in range(len(names)))


@pytest.mark.parametrize('name', ['efficientnet-lite1', 'efficientnet-lite2'])
def test_the_backbone_a_run_loads_is_the_converted_member(
  shared_photos, name, tmp_path, monkeypatch
):
  """`--backbone efficientnet-liteN`: converted once into the cache; its features are Keras'."""
  from modules.backbones import backbone
  from modules.preprocessing import decode_and_resize

  monkeypatch.setenv(backbone.CACHE_ENV, str(tmp_path))
  size = PRETRAINED_BACKBONES[name]
  assert backbone.check(name, size) == efficientnet_lite.FEATURE_DIM
  (folder,) = os.listdir(tmp_path)
  assert folder.startswith(f'{name}-')
  images = decode_and_resize(shared_photos[0][:4], size)
  _, features = backbone.load(name)
  expected = efficientnet_lite.pretrained(size, name=name).predict(images, verbose=0)
  np.testing.assert_allclose(features(images).numpy(), expected, atol=1e-4)


def _same_pad(x, kernel, stride):
  """TensorFlow's SAME padding of an [H, W, C] array (the extra row/column at the end)."""
  pads = []
  for size in x.shape[:2]:
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    pads.append((total // 2, total - total // 2))
  return np.pad(x, pads + [(0, 0)])


def _conv(x, weight, stride, depthwise=False):
  """A plain numpy convolution with a PyTorch [out, in|1, kh, kw] weight, SAME padding."""
  k = weight.shape[-1]
  padded = _same_pad(x, k, stride)
  out_h, out_w = -(-x.shape[0] // stride), -(-x.shape[1] // stride)
  out = np.zeros((out_h, out_w, weight.shape[0]), np.float64)
  for i in range(k):
    for j in range(k):
      patch = padded[i : i + stride * out_h : stride, j : j + stride * out_w : stride]
      if depthwise:
        out += patch * weight[:, 0, i, j]
      else:
        out += patch @ weight[:, :, i, j].T
  return out


def _bn(x, state, prefix):
  return (x - state[prefix + '.running_mean']) / np.sqrt(
    state[prefix + '.running_var'] + 1e-3
  ) * state[prefix + '.weight'] + state[prefix + '.bias']


def test_stem_and_first_block_match_a_numpy_recomputation(member):
  name, state = member
  # An odd size exercises SAME padding's uneven split.
  image = np.random.default_rng(0).uniform(size=(33, 33, 3)).astype(np.float32)
  x = (image * 255.0 - 127.0) / 128.0
  x = np.clip(_bn(_conv(x, state['_conv_stem.weight'], 2), state, '_bn0'), 0, 6)
  x = _conv(x, state['_blocks.0._depthwise_conv.weight'], 1, depthwise=True)
  x = np.clip(_bn(x, state, '_blocks.0._bn1'), 0, 6)
  x = _bn(_conv(x, state['_blocks.0._project_conv.weight'], 1), state, '_blocks.0._bn2')

  model = efficientnet_lite.pretrained(name=name)
  probe = keras.Model(model.input, model.get_layer('blocks_0_bn2').output)
  keras_out = probe.predict(image[None], verbose=0)[0]
  assert keras_out.shape == x.shape == (17, 17, 16)
  np.testing.assert_allclose(keras_out, x, atol=1e-4)


def test_missing_weights_file_is_one_line(tmp_path):
  path = str(tmp_path / 'nope.pth')
  with pytest.raises(torch_checkpoint.CheckpointError, match=f'{path}: cannot read'):
    efficientnet_lite.pretrained(path=path)


def test_truncated_weights_file_is_one_line(tmp_path):
  path = str(tmp_path / 'cut.pth')
  with open(efficientnet_lite.weights_path(), 'rb') as src, open(path, 'wb') as dst:
    dst.write(src.read(5_000_000))
  with pytest.raises(torch_checkpoint.CheckpointError) as error:
    efficientnet_lite.pretrained(path=path)
  assert path in str(error.value) and 'truncated' in str(error.value)
  assert '\n' not in str(error.value)


def test_a_file_that_is_no_checkpoint_is_one_line(tmp_path):
  path = tmp_path / 'photo.pth'
  shutil.copy(__file__, path)
  with pytest.raises(torch_checkpoint.CheckpointError, match='not a readable legacy PyTorch'):
    efficientnet_lite.pretrained(path=str(path))


def test_weights_of_another_architecture_are_named(tmp_path, state):
  resnet = str(tmp_path / 'resnet.pth')
  write_legacy(resnet, {'conv1.weight': np.zeros((64, 3, 7, 7), np.float32)})
  with pytest.raises(
    torch_checkpoint.CheckpointError,
    match='no _conv_stem.weight in the file: expected EfficientNet-Lite0',
  ):
    efficientnet_lite.pretrained(path=resnet)

  wider = dict(state)
  wider['_conv_stem.weight'] = np.zeros((48, 3, 3, 3), np.float32)
  path = str(tmp_path / 'wider.pth')
  write_legacy(path, wider)
  with pytest.raises(
    torch_checkpoint.CheckpointError,
    match=r'_conv_stem.weight has shape \(48, 3, 3, 3\).*another architecture',
  ):
    efficientnet_lite.pretrained(path=path)


def test_reader_round_trips_what_torch_writes(tmp_path):
  arrays = {
    'a': np.arange(24, dtype=np.float32).reshape(2, 3, 4),
    'b': np.arange(6, dtype=np.int64),
  }
  path = str(tmp_path / 'small.pth')
  write_legacy(path, arrays)
  loaded = torch_checkpoint.load(path)
  assert set(loaded) == set(arrays)
  for name, array in arrays.items():
    np.testing.assert_array_equal(loaded[name], array)
    assert loaded[name].dtype == array.dtype
