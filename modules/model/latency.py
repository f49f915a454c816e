"""Single-thread, batch-1 latency of a serving model and its TFLite model, in a process of its own.

TensorFlow sizes its thread pools once per process, before its first op, so
the TFLiteExport step (tfx_pipeline/tflite_export.py) cannot measure one
thread in its own process: `measure` runs this module as
`python -m modules.model.latency SAVED_MODEL_DIR TFLITE_FILE` and reads the JSON
line it prints.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Callable, Dict, List, Optional, Tuple

# (argv, env) -> (exit code, stdout, stderr).
Runner = Callable[[List[str], Dict[str, str]], Tuple[int, str, str]]


def _run(argv: List[str], env: Dict[str, str]) -> Tuple[int, str, str]:
  done = subprocess.run(argv, env=env, capture_output=True, text=True)
  return done.returncode, done.stdout, done.stderr


def child_env() -> Dict[str, str]:
  """This environment, plus what a `python -m modules...` child needs to import the project."""
  import modules

  root = os.path.dirname(os.path.dirname(os.path.abspath(modules.__file__)))
  env = {
    **os.environ,
    'PYTHONPATH': os.pathsep.join(filter(None, [root, os.environ.get('PYTHONPATH')])),
  }
  env.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
  return env


def measure(
  saved_model_dir: str, tflite_file: Optional[str], run: Optional[Runner] = None
) -> Dict[str, float]:
  """{'saved_model_ms': ..., 'tflite_ms': ...} (the latter only with a TFLite file).

  `run(argv, env)` runs the process to its end: (exit code, stdout, stderr); by
  default a new `python`.
  """
  env = child_env()
  argv = [sys.executable, '-m', 'modules.model.latency', saved_model_dir] + (
    [tflite_file] if tflite_file else []
  )
  rc, out, err = (run or _run)(argv, env)
  if rc != 0:
    tail = (err.strip().splitlines() or ['no output'])[-1]
    raise RuntimeError(f'measuring latency failed (exit {rc}): {tail}')
  return json.loads(out.strip().splitlines()[-1])


def _main(saved_model_dir: str, tflite_file: Optional[str] = None) -> None:
  import numpy as np
  import tensorflow as tf

  tf.config.threading.set_intra_op_parallelism_threads(1)
  tf.config.threading.set_inter_op_parallelism_threads(1)
  from modules.model import tflite

  loaded = tf.saved_model.load(saved_model_dir)
  concrete = loaded.image_probabilities.get_concrete_function()
  size = int(concrete.structured_input_signature[0][0].shape[1])
  image = np.random.default_rng(0).uniform(size=(size, size, 3)).astype(np.float32)
  batch = tf.constant(image[None])
  result = {'saved_model_ms': tflite.median_ms(lambda: loaded.image_probabilities(batch))}
  if tflite_file:
    with open(tflite_file, 'rb') as f:
      classifier = tflite.Classifier(f.read(), threads=1)
    result['tflite_ms'] = tflite.median_ms(lambda: classifier.one(image))
  print(json.dumps(result))


if __name__ == '__main__':
  _main(*sys.argv[1:])
