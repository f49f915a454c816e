"""Reads PyTorch's legacy `.pth` state-dict files into numpy arrays, without torch.

The built-in `efficientnet-lite0` backbone (modules/backbones/efficientnet_lite.py) gets
its ImageNet weights from such a file. The legacy format (`torch.save` with
`_use_new_zipfile_serialization=False`) is five pickles and raw bytes:
a magic number, a protocol version, a sys-info dict, the state dict (its
tensors name their storages by persistent id), the sorted list of storage
keys; then each storage as an 8-byte little-endian element count followed by
its elements.
"""

from __future__ import annotations

import collections
import pickle
from typing import BinaryIO, Dict

import numpy as np

_MAGIC = 0x1950A86A20F9469CFC6C
_PROTOCOL = 1001
_DTYPES = {
  'FloatStorage': np.float32,
  'DoubleStorage': np.float64,
  'HalfStorage': np.float16,
  'LongStorage': np.int64,
  'IntStorage': np.int32,
  'ShortStorage': np.int16,
  'CharStorage': np.int8,
  'ByteStorage': np.uint8,
  'BoolStorage': np.bool_,
}


class CheckpointError(ValueError):
  """A file that is not a readable legacy PyTorch state dict; the message names it."""


class _Storage:
  def __init__(self, dtype):
    self.dtype = dtype


class _Tensor:
  """A tensor whose storage is read after the state dict's pickle."""

  def __init__(self, storage_id, offset, size, stride):
    self.storage_id, self.offset, self.size, self.stride = storage_id, offset, size, stride


def _rebuild_tensor(storage_id, offset, size, stride, *unused):
  return _Tensor(storage_id, offset, tuple(size), tuple(stride))


class _Unpickler(pickle.Unpickler):
  """Allows only what a state dict holds: ordered dicts, tensors and storage types."""

  def __init__(self, file, storages: dict):
    super().__init__(file)
    self._storages = storages

  def find_class(self, module, name):
    if module == 'collections' and name == 'OrderedDict':
      return collections.OrderedDict
    if module == 'torch._utils' and name in ('_rebuild_tensor', '_rebuild_tensor_v2'):
      return _rebuild_tensor
    if module == 'torch' and name in _DTYPES:
      return _Storage(_DTYPES[name])
    raise pickle.UnpicklingError(f'unexpected object {module}.{name}')

  def persistent_load(self, pid):
    # ('storage', storage type, key, location, element count[, view metadata])
    kind, storage_type, key = pid[:3]
    if kind != 'storage':
      raise pickle.UnpicklingError(f'unexpected persistent id {kind!r}')
    self._storages[key] = storage_type.dtype
    return key


def _read_storage(f: BinaryIO, dtype, path: str, key: str) -> np.ndarray:
  header = f.read(8)
  if len(header) < 8:
    raise CheckpointError(
      f'{path}: truncated (storage {key} is missing): reinstall the weights '
      'package or download the file again.'
    )
  count = int.from_bytes(header, 'little')
  itemsize = np.dtype(dtype).itemsize
  data = f.read(count * itemsize)
  if len(data) < count * itemsize:
    raise CheckpointError(
      f'{path}: truncated (storage {key} has {len(data)} of '
      f'{count * itemsize} bytes): reinstall the weights package or download '
      'the file again.'
    )
  return np.frombuffer(data, dtype=dtype)


def load(path: str) -> Dict[str, np.ndarray]:
  """The state dict in `path` as {name: array}; raises CheckpointError naming the file."""
  try:
    f = open(path, 'rb')
  except OSError as e:
    raise CheckpointError(f'{path}: cannot read the weights file ({e.strerror}).') from None
  with f:
    storages: dict = {}
    try:
      magic = pickle.load(f)
      if magic != _MAGIC:
        raise CheckpointError(f'{path}: not a legacy PyTorch .pth file (no torch magic number).')
      protocol = pickle.load(f)
      if protocol != _PROTOCOL:
        raise CheckpointError(f'{path}: PyTorch file protocol {protocol}, expected {_PROTOCOL}.')
      sys_info = pickle.load(f)
      if not sys_info.get('little_endian', True):
        raise CheckpointError(f'{path}: big-endian tensors are not supported.')
      state = _Unpickler(f, storages).load()
      keys = pickle.load(f)
      arrays = {key: _read_storage(f, storages[key], path, key) for key in keys}
    except CheckpointError:
      raise
    except (pickle.UnpicklingError, EOFError, KeyError, AttributeError, TypeError, ValueError) as e:
      raise CheckpointError(
        f'{path}: not a readable legacy PyTorch state dict ({e or type(e)}); '
        'reinstall the weights package or download the file again.'
      ) from None
  if not isinstance(state, dict):
    raise CheckpointError(f'{path}: holds a {type(state).__name__}, not a state dict.')
  return {
    name: _materialise(tensor, arrays)
    for name, tensor in state.items()
    if isinstance(tensor, _Tensor)
  }


def _materialise(tensor: _Tensor, arrays: Dict[str, np.ndarray]) -> np.ndarray:
  flat = arrays[tensor.storage_id]
  itemsize = flat.dtype.itemsize
  view = np.lib.stride_tricks.as_strided(
    flat[tensor.offset :], shape=tensor.size, strides=tuple(s * itemsize for s in tensor.stride)
  )
  return np.array(view)  # A contiguous copy the caller owns.
