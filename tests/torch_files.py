"""Writes PyTorch's legacy `.pth` format without torch, for the reader's and bad-file tests."""

import collections
import pickle
import sys
import types

import numpy as np

_MAGIC = 0x1950A86A20F9469CFC6C
_STORAGES = {np.dtype(np.float32): 'FloatStorage', np.dtype(np.int64): 'LongStorage'}


class _Storage:
  def __init__(self, key, array):
    self.key, self.array = key, array


def _stand_ins():
  """(torch, torch._utils, Tensor): stand-ins for the torch names a legacy pickle refers to.

  Pickle writes functions and classes by module and name and checks that they
  resolve, so these take torch's names while a file is written.
  """
  torch = types.ModuleType('torch')
  utils = types.ModuleType('torch._utils')

  def rebuild(*args):
    raise AssertionError('written, never called')

  rebuild.__module__, rebuild.__qualname__ = 'torch._utils', '_rebuild_tensor_v2'
  utils._rebuild_tensor_v2 = rebuild
  for name in _STORAGES.values():
    setattr(torch, name, type(name, (), {'__module__': 'torch'}))

  class Tensor:
    def __init__(self, storage):
      self.storage = storage

    def __reduce__(self):
      a = self.storage.array
      return rebuild, (
        self.storage,
        0,
        a.shape,
        tuple(s // a.itemsize for s in a.strides),
        False,
        collections.OrderedDict(),
      )

  return torch, utils, Tensor


def write_legacy(path: str, state: dict) -> None:
  """Saves {name: array} as torch.save(..., _use_new_zipfile_serialization=False) would."""
  torch, utils, Tensor = _stand_ins()

  class Pickler(pickle.Pickler):
    def persistent_id(self, obj):
      if isinstance(obj, _Storage):
        kind = getattr(torch, _STORAGES[obj.array.dtype])
        return ('storage', kind, obj.key, 'cpu', obj.array.size, None)
      return None

  storages = [_Storage(str(i), np.ascontiguousarray(a)) for i, a in enumerate(state.values())]
  saved = {k: sys.modules.get(k) for k in ('torch', 'torch._utils')}
  sys.modules.update({'torch': torch, 'torch._utils': utils})
  try:
    with open(path, 'wb') as f:
      for header in (
        _MAGIC,
        1001,
        {
          'protocol_version': 1001,
          'little_endian': True,
          'type_sizes': {'short': 2, 'int': 4, 'long': 4},
        },
      ):
        pickle.dump(header, f, protocol=2)
      Pickler(f, protocol=2).dump(
        collections.OrderedDict((name, Tensor(s)) for name, s in zip(state, storages))
      )
      pickle.dump([s.key for s in storages], f, protocol=2)
      for s in storages:
        f.write(int(s.array.size).to_bytes(8, 'little') + s.array.tobytes())
  finally:
    for k, v in saved.items():
      if v is None:
        sys.modules.pop(k, None)
      else:
        sys.modules[k] = v
