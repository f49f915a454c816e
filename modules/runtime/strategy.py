"""Picks the `tf.distribute` strategy for what the machine has: a TPU, GPUs, or neither.

`run_fn` and `tuner_fn` build their models inside `choose().scope()`. Locally
this is TensorFlow's default strategy; on a Vertex AI job whose machine spec
asks for a TPU it is a `TPUStrategy`, and with GPUs a `MirroredStrategy`.
"""

import glob
import os
from typing import Optional

import tensorflow as tf

# Device files of a TPU VM's chips: /dev/accel* (v2-v4) or /dev/vfio/* (v5e and later).
_TPU_DEVICE_FILES = ('/dev/accel*', '/dev/vfio/[0-9]*')


def tpu_resolver() -> Optional[tf.distribute.cluster_resolver.TPUClusterResolver]:
  """A resolver for this machine's TPU, or None without one.

  Looks for the TPU before asking TensorFlow: without a TPU, the resolver
  queries the GCE metadata server, which off Google Cloud only times out.
  """
  name = os.environ.get('TPU_NAME')
  if not name and not any(glob.glob(p) for p in _TPU_DEVICE_FILES):
    return None
  try:
    # 'local': the TPU attached to this VM, which is what a Vertex TPU job gets.
    return tf.distribute.cluster_resolver.TPUClusterResolver(tpu=name or 'local')
  except (ValueError, RuntimeError):
    return None


def gpu_count() -> int:
  """GPUs TensorFlow can see (listing them does not initialise them)."""
  return len(tf.config.list_physical_devices('GPU'))


def is_oracle_chief() -> bool:
  """True in the keras-tuner process that only serves the oracle to the workers."""
  return os.environ.get('KERASTUNER_TUNER_ID') == 'chief'


def choose() -> tf.distribute.Strategy:
  """TPUStrategy with a TPU, MirroredStrategy with GPUs, TensorFlow's default otherwise."""
  if is_oracle_chief():
    # TFX's cloud Tuner runs the oracle in a subprocess beside a worker on the
    # same machine; the oracle trains nothing, and a TPU or the GPU memory
    # TensorFlow reserves would be unavailable to that worker.
    try:
      tf.config.set_visible_devices([], 'GPU')
    except RuntimeError:  # Devices already initialised in this process.
      pass
    return tf.distribute.get_strategy()
  resolver = tpu_resolver()
  if resolver is not None:
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)
  if gpu_count():
    return tf.distribute.MirroredStrategy()
  return tf.distribute.get_strategy()
