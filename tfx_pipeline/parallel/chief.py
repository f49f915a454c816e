"""The chief of a parallel search: serves keras-tuner's oracle to the workers, and supervises them.

`tfx_pipeline.parallel.component`'s executor calls `parallel_search`. The
`OracleServer` is keras-tuner's own `OracleServicer` (the one `tuner.search()`
serves when KERASTUNER_TUNER_ID is 'chief') on a free loopback port, in the
executor's process, so the chief can also see the oracle: which worker holds
which trial, when every trial is done (keras-tuner's own exit test), and end
the trial of a worker that died. keras-tuner's `start_server` cannot be told a
worker died: it waits forever for the dead worker's trial.

What becomes of a worker that exits is the `Supervisor`'s decision, a pure
function of what the chief knows then (tested without processes): a worker
that dies mid-trial is replaced under the same tuner id, and its trial rerun
up to `MAX_TRIAL_RETRIES` times, then ended as FAILED, so the search always
ends.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import time
from concurrent import futures
from typing import Dict, List, Optional

import grpc
import keras_tuner
from keras_tuner.src import protos
from keras_tuner.src.distribute import oracle_chief

from modules import console, stop
from modules.tuning import checkpoints, hooks
from tfx_pipeline.parallel import pool

LOOPBACK = '127.0.0.1'
# A trial whose worker died is rerun this many times by a new worker, then FAILED.
MAX_TRIAL_RETRIES = 1
POLL_SECONDS = 0.5
# How long workers told to stop get to exit before they are killed.
EXIT_GRACE_SECONDS = 60
# What the chief does about a worker that exited.
IGNORE, RESTART, GIVE_UP = 'ignore', 'restart', 'give up'


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


def _trial_states(oracle) -> Dict[str, tuple]:
  """Every trial id -> (the tuner id running it or None, whether it has ended)."""
  running = {trial.trial_id: tuner_id for tuner_id, trial in oracle.ongoing_trials.items()}
  return {
    trial_id: (running.get(trial_id), trial.status in hooks.ENDED)
    for trial_id, trial in oracle.trials.items()
  }


@keras_tuner.synchronized
def _under_lock(oracle, call):
  return call()


class TrialWatch:
  """The search's progress as the chief sees it: a line per ended trial, a status per worker.

  Workers' oracles are remote, so their own lines can only number trials by
  id; the chief has the oracle, and makes the lines a sequential search makes
  (modules/tuning/hooks.py's SearchProgress): the trial's number among those
  ended, the best so far, the ETA. A worker's epochs come from the small file
  its hooks write into the trial's folder at each epoch's end.
  """

  def __init__(self, tuner):
    self._tuner = tuner
    self._oracle = tuner.oracle
    self._progress = tuner.progress
    self._watched: Dict[str, str] = {}  # trial id -> tuner id, while it runs
    self._ended = set()

  def start(self) -> None:
    """From now on: trials that ended before (a resumed search) are not this run's."""
    self._progress.start()
    self._ended = {t for t, (_, ended) in _trial_states(self._oracle).items() if ended}

  def poll(self) -> None:
    """Says which trials ended since the last call, and shows the running ones' status."""
    _under_lock(self._oracle, self._poll)  # The servicer's threads change the oracle.

  def _poll(self) -> None:
    for trial_id, (tuner_id, ended) in _trial_states(self._oracle).items():
      if trial_id in self._ended:
        continue
      if not ended:
        # Running; or waiting for a worker, when a resumed search retries it.
        if tuner_id is not None and trial_id not in self._watched:
          self._watched[trial_id] = tuner_id
          self._progress.trial_began(trial_id)
        continue
      # Ended since the last call (or started and ended between two).
      self._ended.add(trial_id)
      worker = self._watched.pop(trial_id, None)
      if worker:
        console.status(None, key=worker)
      trial = self._oracle.get_trial(trial_id)
      record = self._progress.trial_ended(trial)
      # Numbered in the order seen: two trials that ended since the last poll are two lines.
      number = len(self._ended)
      console.line(self._progress.line(trial, record['seconds'], self._oracle, number))
    for ahead, (trial_id, tuner_id) in enumerate(sorted(self._watched.items())):
      epochs, value = self._epochs(trial_id)
      self._progress.epochs_done(trial_id, epochs)
      status = self._progress.status(self._oracle.get_trial(trial_id), self._oracle, value, ahead)
      console.status(f'[{tuner_id}] {status}', key=tuner_id)

  def _epochs(self, trial_id: str):
    try:
      with open(os.path.join(self._tuner.get_trial_dir(trial_id), hooks.EPOCHS_FILE)) as f:
        record = json.load(f)
      return record['epochs'], record['value']
    except (OSError, ValueError, KeyError):  # No epoch has ended yet.
      return 0, None

  def clear(self) -> None:
    for tuner_id in set(self._watched.values()):
      console.status(None, key=tuner_id)


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


@dataclasses.dataclass(frozen=True)
class WorkerExit:
  """What the chief knows when a worker process has ended."""

  tuner_id: str
  returncode: int
  trial_id: Optional[str] = None  # The trial the oracle had handed it and not seen end.
  asked: bool = True  # It had asked the oracle for a trial.
  stopping: bool = False  # The oracle has no new trial left to hand out.
  log_tail: str = ''


@dataclasses.dataclass(frozen=True)
class Decision:
  """IGNORE, RESTART (the same tuner id) or GIVE_UP (the search fails with `reason`)."""

  action: str
  # Not None: end the worker's trial, if any, as FAILED with this message, and forget its id.
  end_trial: Optional[str] = None
  lost: Optional[dict] = None  # The trial lost with the worker, and its outcome.
  reason: str = ''


class Supervisor:
  """Decides what becomes of each worker that exits; it holds no process and no oracle."""

  def __init__(self, workers: int, max_trials: Optional[int], max_retries: int):
    self.max_retries = max_retries
    self._deaths = collections.Counter()
    # Enough for every trial to lose a worker once and every worker to die idle once.
    self._replacements_left = workers + (max_trials or workers) * (max_retries + 1)

  def on_exit(self, worker: WorkerExit) -> Decision:
    if worker.returncode == 0:
      return Decision(IGNORE)
    how = pool.describe_exit(worker.returncode)
    end_trial = lost = None
    if worker.trial_id is None:
      if not worker.asked and not worker.stopping:
        return Decision(
          GIVE_UP,
          reason=f'tuner worker {worker.tuner_id} {how} before asking for '
          f'a trial: {worker.log_tail or "(no output)"}',
        )
      if worker.stopping:  # Between trials, after the last was handed out.
        return Decision(IGNORE, end_trial='')
    else:
      self._deaths[worker.trial_id] += 1
      deaths = self._deaths[worker.trial_id]
      rerun = deaths <= self.max_retries
      lost = {
        'trial': worker.trial_id,
        'worker': worker.tuner_id,
        'exit': how,
        'outcome': 'rerun' if rerun else 'failed',
      }
      if not rerun:
        end_trial = (
          f'worker {worker.tuner_id} {how} during this trial {deaths} times\n{worker.log_tail}'
        )
        if worker.stopping:
          return Decision(IGNORE, end_trial=end_trial, lost=lost)
    self._replacements_left -= 1
    if self._replacements_left < 0:
      return Decision(
        GIVE_UP,
        end_trial=end_trial,
        lost=lost,
        reason=f'tuner workers keep dying (last: {worker.tuner_id} {how}): '
        f'{worker.log_tail or "(no output)"}',
      )
    # The same tuner id: keras-tuner hands a worker whose id holds a trial
    # that same trial, so a rerun needs no change to the oracle.
    return Decision(RESTART, end_trial=end_trial, lost=lost)


def _log(line: str) -> None:
  print(line, flush=True)  # The run's log; the console only with --verbose.


def parallel_search(tuner, spec_path: str, working_dir: str, workers: int) -> dict:
  """Serves `tuner`'s oracle to `workers` worker processes until every trial has ended.

  Each worker runs the search `spec_path` describes (pool.WorkerPool). Their
  output goes to this process's stdout, the run's log; trial lines, lost
  trials and the workers' status go to the console (modules/console.py).
  """
  oracle = tuner.oracle
  threads = pool.threads_per_worker(workers)
  server = OracleServer(oracle)
  worker_pool = pool.WorkerPool(
    spec_path, server.address, threads, log_dir=os.path.join(working_dir, 'worker_logs'), echo=_log
  )
  supervisor = Supervisor(workers, oracle.max_trials, MAX_TRIAL_RETRIES)
  _log(
    f'parallel search: chief on {server.address[0]}:{server.port}, {workers} workers '
    f'with {threads} CPU thread{"s" if threads > 1 else ""} each'
  )
  lost: List[dict] = []
  watch = TrialWatch(tuner)
  # The hooks cannot keep the budget in workers (their oracle is remote): the chief keeps it.
  tuner.budget.start()
  watch.start()
  try:
    server.start()
    for index in range(workers):
      worker_pool.start(f'tuner{index}')
    while not server.finished():
      stop.check()  # A Ctrl-C of the run: the workers are stopped below.
      spent = server.stop_if_spent(tuner.budget)
      if spent:
        console.line(spent)
      # The workers' oracles are remote: the chief deletes the checkpoints no trial needs.
      server.prune_checkpoints(tuner._get_checkpoint_fname)
      watch.poll()
      for worker in worker_pool.exited():
        decision = supervisor.on_exit(
          WorkerExit(
            worker.tuner_id,
            worker.process.returncode,
            server.ongoing_trial(worker.tuner_id),
            asked=worker.tuner_id in oracle.tuner_ids,
            stopping=server.stopping,
            log_tail=worker.log_tail(),
          )
        )
        if decision.end_trial is not None:
          server.end_lost_trial(worker.tuner_id, decision.end_trial)
        if decision.lost:
          lost.append({**decision.lost, 'time': time.time()})
          console.line(
            f'tuning: lost {pool.describe_lost(decision.lost)}'
            + (' in a new worker' if decision.lost['outcome'] == 'rerun' else '')
          )
        if decision.action == GIVE_UP:
          raise RuntimeError(decision.reason)
        if decision.action == RESTART:
          worker_pool.start(worker.tuner_id)
      if not worker_pool.workers and not server.finished():
        raise RuntimeError('no tuner worker left, but trials are unfinished')
      time.sleep(POLL_SECONDS)
    watch.poll()  # The trials that ended since the last look.
    worker_pool.wait(timeout=EXIT_GRACE_SECONDS)
  finally:
    watch.clear()
    worker_pool.stop()
    server.stop()
    if lost:
      pool.record_lost(tuner.project_dir, lost)
  ended = collections.Counter(t.status for t in oracle.trials.values())
  counts = ', '.join(f'{n} {status}' for status, n in sorted(ended.items()))
  pruned = len(getattr(oracle, 'pruned', {}))  # modules/tuning/pruning.py
  if pruned:
    counts += f', {pruned} of them pruned'
  lost_text = '; '.join(pool.describe_lost(r) for r in lost)
  _log(
    f'parallel search: {sum(ended.values())} trials ({counts}) by {workers} workers; '
    + (f'lost with a worker: {lost_text}' if lost else 'no trial lost')
  )
  return {
    'workers': workers,
    'threads': threads,
    'lost': lost,
    'statuses': dict(ended),
    'pruned': pruned,
  }
