"""Beam options of a local run: how many DirectRunner workers, and two costs TFX need not pay.

The local runner passes `pipeline_args(...)` to the data check and to every Beam
step (ImportExampleGen, StatisticsGen, Transform, Evaluator).

- Workers (`--beam-workers`). `one` runs each Beam step in this process on one
  core; `threads` runs one worker thread per core in this process (zlib, TFRecord
  CRCs and TensorFlow release the GIL, and no worker has to start); `processes`
  runs one worker process per core (`--direct_running_mode=multi_processing
  --direct_num_workers=0`), which parallelises the Python work too, but every
  worker of every Beam step first imports TensorFlow and TFX (6-7 s of CPU
  each). Transform over 3,670 images at 224 px on 2 busy cores (load 6): one
  worker 53 s (24 s of CPU), threads 47 s (26 s), processes 62 s (38 s, the
  workers' start-up included; ImportExampleGen and StatisticsGen went from 4 and
  8 s to 25 and 26 s). Threads cost a fixed start-up in every step, too:
  ImportExampleGen, StatisticsGen and Transform at 224 px took 15-17 s with one
  worker and 21-22 s with threads on 300 real photos (14 MB), but 32 s and 27 s
  on 1,000 (47 MB); on 2,000 small synthetic images at 32 px (6 MB) 16 s and 25 s. So
  `auto` (the default) goes by the size of the data's files: one worker below
  `THREADS_FROM_MB`, threads below `PROCESSES_FROM_MB`, processes from there,
  where their start-up is a small share.
  Outputs are the same in every mode (tests/test_beam_workers.py).
- TFX repackages its own installation as an sdist for remote workers whenever
  Beam args are given and none names the job's dependencies
  (`tfx.utils.dependency_utils.make_beam_dependency_flags`): about 2 s and 48 MB
  left under /tmp per Beam step. The DirectRunner stages nothing, so an empty
  `--extra_packages=` tells TFX the dependencies are taken care of.
- Beam pickles its transforms with dill by default, and dill resets a logger's
  level on every call, which walks every logger TensorFlow and TFX have made:
  about 7 s of CPU in the steps before the Tuner at 3,670 images.
  `--pickle_library=cloudpickle` does the same pickling without it.

The Evaluator always runs on one worker: TFMA's metric combiners fail under
multi_threading (`TypeError: 'NoneType' object is not subscriptable` in
`tf_metric_wrapper`: a combiner compacted before its setup), and its work is the
model's inference, which TensorFlow already spreads over the cores.

tfx_bsl's `--tfxio_use_byte_size_batching` is left off: it sizes batches by the
bytes of the *input* records (20 MB), so small JPEGs make batches of thousands of
150 KB transformed images: the steps up to Transform over 3,670 synthetic images
peaked at 3.45 GB with it, 1.08 GB without.
"""

from __future__ import annotations

import glob
import os
from typing import Tuple

from tfx_pipeline.config import BEAM_PROCESSES_FROM_MB as PROCESSES_FROM_MB
from tfx_pipeline.config import BEAM_THREADS_FROM_MB as THREADS_FROM_MB
from tfx_pipeline.config import BEAM_WORKERS as WORKERS

_COMMON = ('--extra_packages=', '--pickle_library=cloudpickle')
ONE_WORKER = ('--direct_running_mode=in_memory', '--direct_num_workers=1')
# Steps that run on ONE_WORKER whatever the mode (see above).
ONE_WORKER_STEPS = ('Evaluator',)


def workers_mode(workers: str, data_bytes: int, cores: int | None = None) -> str:
  """The mode `workers` means for data files of `data_bytes` bytes: one, threads or processes."""
  if workers not in WORKERS:
    raise ValueError(f'--beam-workers {workers}: choose one of {", ".join(WORKERS)}.')
  if workers != 'auto':
    return workers
  megabytes = data_bytes / 2**20
  if (cores or os.cpu_count() or 1) < 2 or megabytes < THREADS_FROM_MB:
    return 'one'
  return 'processes' if megabytes >= PROCESSES_FROM_MB else 'threads'


def data_bytes(data_root: str) -> int:
  """The size of the TFRecord files in `data_root` (a local folder), what `auto` goes by."""
  files = glob.glob(os.path.join(data_root, '*.tfrecord*'))
  return sum(os.path.getsize(f) for f in files if os.path.isfile(f))


def pipeline_args(mode: str) -> Tuple[str, ...]:
  """The Beam options for a mode `workers_mode` returned."""
  workers = {
    'one': ONE_WORKER,
    'threads': ('--direct_running_mode=multi_threading', '--direct_num_workers=0'),
    'processes': ('--direct_running_mode=multi_processing', '--direct_num_workers=0'),
  }[mode]
  return workers + _COMMON


def keep_on_one_worker(pipeline) -> None:
  """Gives the ONE_WORKER_STEPS of `pipeline` one worker: their own args follow the pipeline's."""
  for component in pipeline.components:
    if component.id in ONE_WORKER_STEPS:
      component.with_beam_pipeline_args(list(ONE_WORKER))


def prepare(mode: str, project_root: str) -> Tuple[str, ...]:
  """The Beam options for a mode `workers_mode` returned, with the environment its workers need.

  Threads and processes talk to the runner over gRPC on the loopback interface,
  and gRPC sends even that through an HTTP proxy set in the environment
  (`http_proxy`), where the connection never comes up (`grpc.FutureTimeoutError`
  after 60 s): loopback goes on `no_grpc_proxy`. Worker processes also get
  this project on their import path, whatever the working directory.
  """
  if mode != 'one':
    _add_to_env('no_grpc_proxy', ',', 'localhost', '127.0.0.1')
  if mode == 'processes':
    _add_to_env('PYTHONPATH', os.pathsep, project_root)
  return pipeline_args(mode)


def _add_to_env(name: str, separator: str, *values: str) -> None:
  current = [v for v in os.environ.get(name, '').split(separator) if v]
  os.environ[name] = separator.join(current + [v for v in values if v not in current])
