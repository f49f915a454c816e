"""The local Tuner step with parallel trials: a keras-tuner chief plus N worker processes.

`create_pipeline` uses `ParallelTuner` for local runs (`run_local.py
--parallel-trials N`). It is TFX's Tuner with its own executor: with
`TuneArgs(num_parallel_trials=1)` (or none) the executor does exactly what TFX's
stock one does; with N > 1 it runs keras-tuner's distributed search on this
machine, the protocol TFX's Vertex Tuner uses across machines: the chief's
oracle (`tfx_pipeline.parallel.chief`) on loopback in this process, and N
workers (`tfx_pipeline.parallel.pool`) that each call the same `tuner_fn` and
`search(**fit_kwargs)` on the shared trial folder. A worker that dies mid-trial
is replaced; its trial is rerun up to `MAX_TRIAL_RETRIES` times, then ended as
FAILED, so the search always ends. Then `best_hyperparameters` is written the
way TFX's executor writes it.
"""
from __future__ import annotations

import collections
import json
import os
import time
from typing import Any, Callable, Dict, List

from tfx import types
from tfx import v1 as tfx
from tfx.components.trainer import fn_args_utils
from tfx.components.tuner import executor as tuner_executor
from tfx.components.util import udf_utils
from tfx.dsl.components.base import base_executor, executor_spec
from tfx.types import artifact_utils

from tfx_pipeline.parallel import pool
from tfx_pipeline.parallel.chief import OracleServer

# A trial whose worker died is rerun this many times by a new worker, then FAILED.
MAX_TRIAL_RETRIES = 1
POLL_SECONDS = 0.5
# How long workers told to stop get to exit before they are killed.
EXIT_GRACE_SECONDS = 60


def _echo(line: str) -> None:
  print(line, flush=True)


def _chief_tuner(input_dict, exec_properties, working_dir: str):
  """The tuner `tuner_fn` builds, in this process: its oracle is the one the chief serves."""
  fn_args = fn_args_utils.get_common_fn_args(input_dict, exec_properties, working_dir)
  tuner = udf_utils.get_fn(exec_properties, 'tuner_fn')(fn_args).tuner
  oracle = tuner.oracle
  # keras-tuner reloads a project only when this tuner id's own file exists;
  # in a parallel search the workers write theirs, and the oracle's file is
  # what holds the trials.
  if not oracle.trials and os.path.exists(oracle._get_oracle_fname()):
    oracle.reload()
  oracle.verbose = 0  # The workers print each trial.
  return tuner


def _write_spec(path: str, input_dict, exec_properties, working_dir: str) -> str:
  with open(path, 'w') as f:
    json.dump({'input_dict': artifact_utils.jsonify_artifact_dict(input_dict),
               'exec_properties': exec_properties, 'working_dir': working_dir}, f)
  return path


def parallel_search(tuner, input_dict, exec_properties, working_dir: str, workers: int,
                    echo: Callable[[str], None] = _echo) -> dict:
  """Serves `tuner`'s oracle to `workers` worker processes until every trial has ended."""
  oracle = tuner.oracle
  threads = pool.threads_per_worker(workers)
  server = OracleServer(oracle)
  worker_pool = pool.WorkerPool(
      _write_spec(os.path.join(working_dir, 'worker_spec.json'), input_dict, exec_properties,
                  working_dir),
      server.address, threads, log_dir=os.path.join(working_dir, 'worker_logs'), echo=echo)
  echo(f'parallel search: chief on {server.address[0]}:{server.port}, {workers} workers '
       f'with {threads} CPU thread{"s" if threads > 1 else ""} each')
  lost: List[dict] = []
  deaths = collections.Counter()
  # Enough for every trial to lose a worker once and every worker to die idle once.
  replacements_left = workers + (oracle.max_trials or workers) * (MAX_TRIAL_RETRIES + 1)
  # The hooks cannot keep the budget in workers (their oracle is remote): the chief keeps it.
  tuner.budget.start()
  try:
    server.start()
    for index in range(workers):
      worker_pool.start(f'tuner{index}')
    while not server.finished():
      spent = server.stop_if_spent(tuner.budget)
      if spent:
        echo(spent)
      for worker in worker_pool.exited():
        if worker.process.returncode == 0:
          continue
        how = pool.describe_exit(worker.process.returncode)
        trial_id = server.ongoing_trial(worker.tuner_id)
        if trial_id is None:
          if worker.tuner_id not in oracle.tuner_ids and not server.stopping:
            raise RuntimeError(f'tuner worker {worker.tuner_id} {how} before asking for a '
                               f'trial: {worker.log_tail() or "(no output)"}')
          if server.stopping:  # Between trials, after the last was handed out.
            server.end_lost_trial(worker.tuner_id, '')
            continue
        else:
          deaths[trial_id] += 1
          rerun = deaths[trial_id] <= MAX_TRIAL_RETRIES
          if not rerun:
            server.end_lost_trial(
                worker.tuner_id, f'worker {worker.tuner_id} {how} during this trial '
                f'{deaths[trial_id]} times\n{worker.log_tail()}')
          record = {'trial': trial_id, 'worker': worker.tuner_id, 'exit': how,
                    'outcome': 'rerun' if rerun else 'failed', 'time': time.time()}
          lost.append(record)
          echo(f'tuning: lost {pool.describe_lost(record)}'
               + (' in a new worker' if rerun else ''))
          if not rerun and server.stopping:
            continue
        replacements_left -= 1
        if replacements_left < 0:
          raise RuntimeError(f'tuner workers keep dying (last: {worker.tuner_id} {how}): '
                             f'{worker.log_tail() or "(no output)"}')
        # The same tuner id: keras-tuner hands a worker whose id holds a trial
        # that same trial, so a rerun needs no change to the oracle.
        worker_pool.start(worker.tuner_id)
      if not worker_pool.workers and not server.finished():
        raise RuntimeError('no tuner worker left, but trials are unfinished')
      time.sleep(POLL_SECONDS)
    worker_pool.wait(timeout=EXIT_GRACE_SECONDS)
  finally:
    worker_pool.stop()
    server.stop()
    if lost:
      pool.record_lost(tuner.project_dir, lost)
  ended = collections.Counter(t.status for t in oracle.trials.values())
  counts = ', '.join(f'{n} {status}' for status, n in sorted(ended.items()))
  lost_text = '; '.join(pool.describe_lost(r) for r in lost)
  echo(f'parallel search: {sum(ended.values())} trials ({counts}) by {workers} workers; '
       + (f'lost with a worker: {lost_text}' if lost else 'no trial lost'))
  return {'workers': workers, 'threads': threads, 'lost': lost, 'statuses': dict(ended)}


class Executor(base_executor.BaseExecutor):
  """TFX's Tuner executor, with TuneArgs.num_parallel_trials workers on this machine."""

  def Do(self, input_dict: Dict[str, List[types.Artifact]],
         output_dict: Dict[str, List[types.Artifact]],
         exec_properties: Dict[str, Any]) -> None:
    tune_args = tuner_executor.get_tune_args(exec_properties)
    workers = tune_args.num_parallel_trials if tune_args else 1
    working_dir = self._get_tmp_dir()
    if workers <= 1:
      tuner = tuner_executor.search(input_dict, exec_properties, working_dir)
    else:
      tuner = _chief_tuner(input_dict, exec_properties, working_dir)
      parallel_search(tuner, input_dict, exec_properties, working_dir, workers)
    tuner_executor.write_best_hyperparameters(tuner, output_dict)


class ParallelTuner(tfx.components.Tuner):
  """TFX's Tuner component, run by `Executor` (parallel trials through `tune_args`)."""
  EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)
