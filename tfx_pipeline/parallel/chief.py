"""The chief of a parallel search: serves keras-tuner's oracle to the workers, and supervises them.

`tfx_pipeline.parallel.component`'s executor calls `parallel_search`. The
`OracleServer` is keras-tuner's own `OracleServicer` (the one `tuner.search()`
serves when KERASTUNER_TUNER_ID is 'chief') on a free loopback port, in the
executor's process, so the chief can also see the oracle: which worker holds
which trial, when every trial is done (keras-tuner's own exit test), and end
the trial of a worker that died. keras-tuner's `start_server` cannot be told a
worker died: it waits forever for the dead worker's trial.

The search is a loop of named events (`_Chief`), as keras-tuner's own
`BaseTuner.search`: keep the budget, prune checkpoints, watch the trials, and
act on each worker that exits as the `Supervisor` (supervisor.py) decides.
"""

from __future__ import annotations

import collections
import os
import time
from concurrent import futures
from typing import Optional

import grpc
import keras_tuner
from keras_tuner.src import protos
from keras_tuner.src.distribute import oracle_chief

from modules.runtime import console, stop
from modules.tuning import checkpoints
from tfx_pipeline.parallel import pool
from tfx_pipeline.parallel.supervisor import GIVE_UP, RESTART, Supervisor, WorkerExit
from tfx_pipeline.parallel.watch import TrialWatch

LOOPBACK = '127.0.0.1'
# A trial whose worker died is rerun this many times by a new worker, then FAILED.
MAX_TRIAL_RETRIES = 1
POLL_SECONDS = 0.5
# How long workers told to stop get to exit before they are killed.
EXIT_GRACE_SECONDS = 60


@keras_tuner.synchronized
def _end_lost_trial(oracle, tuner_id: str, message: str) -> Optional[str]:
  # Under the oracle's lock, like the servicer's own calls.
  trial = oracle.ongoing_trials.get(tuner_id)
  if trial is not None:
    trial.status = keras_tuner.engine.trial.TrialStatus.FAILED
    trial.message = message
    oracle.end_trial(trial)
  # The worker will never ask for another trial; without this the chief
  # would wait for it (oracle_chief.exit_chief).
  oracle.tuner_ids.discard(tuner_id)
  return trial.trial_id if trial is not None else None


@keras_tuner.synchronized
def _ongoing_trial_id(oracle, tuner_id: str) -> Optional[str]:
  trial = oracle.ongoing_trials.get(tuner_id)
  return trial.trial_id if trial is not None else None


@keras_tuner.synchronized
def _stop_if_spent(oracle, budget) -> Optional[str]:
  return budget.stop_if_spent(oracle)


@keras_tuner.synchronized
def _prune_checkpoints(oracle, checkpoint_path) -> int:
  return checkpoints.prune(oracle, checkpoint_path)


class OracleServer:
  """keras-tuner's oracle servicer on a free loopback port."""

  def __init__(self, oracle):
    self.oracle = oracle
    self._servicer = oracle_chief.OracleServicer(oracle)
    # One RPC at a time, as keras-tuner's start_server does.
    self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    protos.get_service_grpc().add_OracleServicer_to_server(self._servicer, self._server)
    # Port 0: the OS picks a free port, so concurrent searches never collide.
    self.port = self._server.add_insecure_port(f'{LOOPBACK}:0')
    self.address = (LOOPBACK, self.port)

  def start(self) -> 'OracleServer':
    # Trials and their ids come from the oracle's saved state when resuming.
    self.oracle.save()
    self._server.start()
    return self

  def stop(self) -> None:
    self._server.stop(grace=None)

  def finished(self) -> bool:
    """keras-tuner's own test: a worker was told to stop, and no worker holds a trial."""
    return self._servicer.stop_triggered and oracle_chief.exit_chief(self.oracle)

  @property
  def stopping(self) -> bool:
    """True once the oracle has no new trial left to hand out."""
    return self._servicer.stop_triggered

  def ongoing_trial(self, tuner_id: str) -> Optional[str]:
    """The id of the trial worker `tuner_id` is running, if any."""
    return _ongoing_trial_id(self.oracle, tuner_id)

  def end_lost_trial(self, tuner_id: str, message: str) -> Optional[str]:
    """Ends the trial of a dead worker as FAILED and forgets the worker; returns the trial id."""
    return _end_lost_trial(self.oracle, tuner_id, message)

  def stop_if_spent(self, budget) -> Optional[str]:
    """The sequential search's budget check (modules.tuning.hooks), under the oracle's lock."""
    return _stop_if_spent(self.oracle, budget)

  def prune_checkpoints(self, checkpoint_path) -> int:
    """Deletes checkpoints the search no longer needs (modules.tuning.checkpoints), locked."""
    return _prune_checkpoints(self.oracle, checkpoint_path)


def _log(line: str) -> None:
  print(line, flush=True)  # The run's log; the console only with --verbose.


def parallel_search(tuner, spec_path: str, working_dir: str, workers: int) -> dict:
  """Serves `tuner`'s oracle to `workers` worker processes until every trial has ended.

  Each worker runs the search `spec_path` describes (pool.WorkerPool). Their
  output goes to this process's stdout, the run's log; trial lines, lost
  trials and the workers' status go to the console (modules/runtime/console.py).
  """
  chief = _Chief(tuner, spec_path, working_dir, workers)
  try:
    chief.on_search_begin()
    while not chief.server.finished():
      stop.check()  # A Ctrl-C of the run: the workers are stopped below.
      chief.keep_budget()
      chief.prune_checkpoints()
      chief.watch.poll()
      for worker in chief.pool.exited():
        chief.on_worker_exit(worker)
      chief.check_workers_left()
      time.sleep(POLL_SECONDS)
    chief.on_search_end()
  finally:
    chief.close()
  return chief.summary()


class _Chief:
  """The chief's parts, and what it does on each event of the search."""

  def __init__(self, tuner, spec_path: str, working_dir: str, workers: int):
    self.tuner, self.workers = tuner, workers
    self.threads = pool.threads_per_worker(workers)
    self.server = OracleServer(tuner.oracle)
    self.pool = pool.WorkerPool(
      spec_path,
      self.server.address,
      self.threads,
      log_dir=os.path.join(working_dir, 'worker_logs'),
      echo=_log,
    )
    self.supervisor = Supervisor(workers, tuner.oracle.max_trials, MAX_TRIAL_RETRIES)
    self.watch = TrialWatch(tuner)

  def on_search_begin(self) -> None:
    _log(
      f'parallel search: chief on {self.server.address[0]}:{self.server.port}, '
      f'{self.workers} workers with {self.threads} CPU thread{"s" if self.threads > 1 else ""} each'
    )
    # The hooks cannot keep the budget in workers (their oracle is remote): the chief keeps it.
    self.tuner.budget.start()
    self.watch.start()
    self.server.start()
    for index in range(self.workers):
      self.pool.start(f'tuner{index}')

  def keep_budget(self) -> None:
    spent = self.server.stop_if_spent(self.tuner.budget)
    if spent:
      console.line(spent)

  def prune_checkpoints(self) -> None:
    # The workers' oracles are remote: the chief deletes the checkpoints no trial needs.
    self.server.prune_checkpoints(self.tuner._get_checkpoint_fname)

  def on_worker_exit(self, worker) -> None:
    decision = self.supervisor.on_exit(
      WorkerExit(
        worker.tuner_id,
        worker.process.returncode,
        self.server.ongoing_trial(worker.tuner_id),
        asked=worker.tuner_id in self.tuner.oracle.tuner_ids,
        stopping=self.server.stopping,
        log_tail=worker.log_tail(),
      )
    )
    if decision.end_trial is not None:
      self.server.end_lost_trial(worker.tuner_id, decision.end_trial)
    if decision.lost:
      console.line(
        f'tuning: lost {pool.describe_lost(decision.lost)}'
        + (' in a new worker' if decision.lost['outcome'] == 'rerun' else '')
      )
    if decision.action == GIVE_UP:
      raise RuntimeError(decision.reason)
    if decision.action == RESTART:
      self.pool.start(worker.tuner_id)

  def check_workers_left(self) -> None:
    if not self.pool.workers and not self.server.finished():
      raise RuntimeError('no tuner worker left, but trials are unfinished')

  def on_search_end(self) -> None:
    self.watch.poll()  # The trials that ended since the last look.
    self.pool.wait(timeout=EXIT_GRACE_SECONDS)

  def close(self) -> None:
    self.watch.clear()
    self.pool.stop()
    self.server.stop()
    self.supervisor.record(self.tuner.project_dir)

  def summary(self) -> dict:
    """Logs and returns how the trials ended, and which were lost with a worker."""
    oracle, lost = self.tuner.oracle, self.supervisor.lost
    ended = collections.Counter(t.status for t in oracle.trials.values())
    counts = ', '.join(f'{n} {status}' for status, n in sorted(ended.items()))
    pruned = len(getattr(oracle, 'pruned', {}))  # modules/tuning/pruning.py
    if pruned:
      counts += f', {pruned} of them pruned'
    lost_text = '; '.join(pool.describe_lost(r) for r in lost)
    _log(
      f'parallel search: {sum(ended.values())} trials ({counts}) by {self.workers} workers; '
      + (f'lost with a worker: {lost_text}' if lost else 'no trial lost')
    )
    return {
      'workers': self.workers,
      'threads': self.threads,
      'lost': lost,
      'statuses': dict(ended),
      'pruned': pruned,
    }
