"""A trial's serving latency (single thread, batch 1) and size, from one long-lived process.

TensorFlow sizes its thread pools once per process, before its first op, so a
trial's own process (as many threads as cores) cannot time one thread. A new
process per trial (what modules/model/latency.py does once per export) would
pay TensorFlow's import and the backbone's load every trial. Instead one
`Probe` process, started with one thread on the first measurement, serves the
whole search: a request line in, a JSON line out.

It times the model the trial would serve, rebuilt from the trial's
hyperparameters: latency and size do not depend on the weights' values, so no
weights travel. The built-in model is timed in two parts: the backbone (with the
resize to its own image size), once per (backbone, its size, stored size), and
the trial's head, every trial. A served call runs them in sequence in one graph
call, so its latency is the sum of the two medians less the cost of the one
call the two-part timing adds (an empty graph call's median). A --hypermodel's model is
timed whole, every trial. The size is the float weights' bytes, backbone
included: what the exported model holds.
"""

from __future__ import annotations

import atexit
import json
import subprocess
import sys
import tempfile
import threading
from typing import Any, Dict, Optional, Tuple

_REPLY = 'probe: '  # Marks the reply among whatever else a library prints to stdout.


class ProbeError(RuntimeError):
  pass


class Probe:
  """The measuring process: `measure(hp_config, config_dict, num_classes)` -> figures."""

  def __init__(self):
    self._process: Optional[subprocess.Popen] = None
    self._stderr = None
    self._lock = threading.Lock()  # One request at a time on the pipe.

  def _start(self) -> subprocess.Popen:
    from modules.model import latency

    self._stderr = tempfile.TemporaryFile(mode='w+')
    argv = [sys.executable, '-m', 'modules.model.latency_probe']
    return subprocess.Popen(
      argv,
      env=latency.child_env(),
      stdin=subprocess.PIPE,
      stdout=subprocess.PIPE,
      stderr=self._stderr,
      text=True,
    )

  def measure(self, hp_config: dict, config: dict, num_classes: int) -> Dict[str, float]:
    """{'latency_ms', 'model_mb', 'backbone_ms', 'head_ms', 'threads'} of the served model."""
    request = {'hp': hp_config, 'config': config, 'num_classes': num_classes}
    with self._lock:
      if self._process is None or self._process.poll() is not None:
        self._process = self._start()
      self._process.stdin.write(json.dumps(request) + '\n')
      self._process.stdin.flush()
      for line in self._process.stdout:
        if line.startswith(_REPLY):
          reply = json.loads(line[len(_REPLY) :])
          if 'error' in reply:
            raise ProbeError(f'measuring latency failed: {reply["error"]}')
          return reply
      raise ProbeError(f'measuring latency failed: the process ended: {self._tail()}')

  def _tail(self) -> str:
    self._stderr.seek(0)
    return (self._stderr.read().strip().splitlines() or ['no output'])[-1]

  def close(self) -> None:
    if self._process is not None and self._process.poll() is None:
      self._process.stdin.close()  # Its loop ends at end of input.
      try:
        self._process.wait(timeout=10)
      except subprocess.TimeoutExpired:
        self._process.kill()
    self._process = None
    if self._stderr is not None:
      self._stderr.close()
      self._stderr = None


_SHARED: Optional[Probe] = None


def shared() -> Probe:
  """This process's probe, closed at exit."""
  global _SHARED
  if _SHARED is None:
    _SHARED = Probe()
    atexit.register(_SHARED.close)
  return _SHARED


def weight_mb(model) -> float:
  """The model's weights in MB, a frozen SavedModel backbone's variables included."""
  import tensorflow as tf

  from modules.backbones.backbone import SavedModelFeatures

  saved = [lyr for lyr in model._flatten_layers() if isinstance(lyr, SavedModelFeatures)]
  skip = {id(w) for lyr in saved for w in lyr.weights}
  variables = {id(w): w for w in model.weights if id(w) not in skip}
  for lyr in saved:  # Frozen, its variables are no Keras weights.
    variables.update({id(v): v for v in lyr._module.variables})
  count = sum(_elements(v.shape) * tf.as_dtype(v.dtype).size for v in variables.values())
  return count / 2**20


def _elements(shape) -> int:
  n = 1
  for d in shape:
    n *= int(d)
  return n


def _timed(model, shape) -> float:
  """Median ms of a traced batch-1 call of `model` on `shape`, as a served graph runs."""
  import numpy as np
  import tensorflow as tf

  from modules.model import tflite

  call = tf.function(lambda x: model(x, training=False))
  batch = tf.constant(np.random.default_rng(0).uniform(size=(1, *shape)).astype(np.float32))
  return tflite.median_ms(lambda: call(batch))


class _Measurer:
  """The child's side: builds the served model's parts and times them; backbones cached."""

  def __init__(self):
    self._backbones: Dict[Tuple[str, int, int], Tuple[float, float, int]] = {}
    self._call_ms: Optional[float] = None  # An empty graph call's.

  def backbone(self, handle: str, size: int, image_size: int) -> Tuple[float, float, int]:
    """(ms, MB, feature dim) of images at `image_size` -> [resize to `size`] -> backbone."""
    key = (handle, size, image_size)
    if key not in self._backbones:
      import keras

      from modules.backbones import backbone

      inputs = keras.Input(shape=(image_size, image_size, 3))
      x = inputs
      if size != image_size:
        x = keras.layers.Resizing(size, size)(x)
      part = keras.Model(inputs, backbone.build_backbone(handle, fine_tune=False)(x))
      shape = (image_size, image_size, 3)
      self._backbones[key] = (_timed(part, shape), weight_mb(part), int(part.output.shape[-1]))
    return self._backbones[key]

  def measure(self, request: Dict[str, Any]) -> Dict[str, float]:
    import keras_tuner
    import tensorflow as tf

    from modules.model import model as built_in
    from modules.module_config import ModuleConfig

    hp = keras_tuner.HyperParameters.from_config(request['hp'])
    config = ModuleConfig.from_custom_config(request['config'])
    classes, image = request['num_classes'], config.image_size
    threads = tf.config.threading.get_intra_op_parallelism_threads()
    if config.hypermodel:
      from modules.model.builder import call_builder, load_builder

      whole = call_builder(config.hypermodel, load_builder(config.hypermodel), hp, classes, image)
      ms = _timed(whole, (image, image, 3))
      return {'latency_ms': ms, 'model_mb': weight_mb(whole), 'threads': threads}
    handle, size = built_in.backbone_view(hp, config)
    backbone_ms, backbone_mb, dim = self.backbone(handle, size, image)
    head = built_in.build_head(hp, classes, dim)
    if self._call_ms is None:
      self._call_ms = _timed(lambda x, training: x, (dim,))
    head_ms = max(_timed(head, (dim,)) - self._call_ms, 0.0)
    return {
      'latency_ms': backbone_ms + head_ms,
      'model_mb': backbone_mb + weight_mb(head),
      'backbone_ms': backbone_ms,
      'head_ms': head_ms,
      'threads': threads,
    }


def _main() -> None:
  import tensorflow as tf

  # Before any op: the pools are sized once, here to one thread, as a phone app's call.
  tf.config.threading.set_intra_op_parallelism_threads(1)
  tf.config.threading.set_inter_op_parallelism_threads(1)
  measurer = _Measurer()
  for line in sys.stdin:
    try:
      reply = measurer.measure(json.loads(line))
    except Exception as e:  # The trial fails with this line; the probe lives on.
      reply = {'error': f'{type(e).__name__}: {e}'}
    print(_REPLY + json.dumps(reply), flush=True)


if __name__ == '__main__':
  _main()
