"""The worker processes of a parallel search on one machine: start, watch, replace, stop.

`tfx_pipeline.parallel.component`'s executor owns a `WorkerPool`. Each worker is a
`python -m tfx_pipeline.parallel.worker` process that keras-tuner's distributed
protocol points at the chief (KERASTUNER_TUNER_ID / _ORACLE_IP / _ORACLE_PORT),
with its share of the CPU threads. A worker's output (stdout and stderr) is
echoed line by line, prefixed with its tuner id (into the run's log), and kept
in a log file of its own whose tail names what went wrong when it dies. It
runs in a session of its own, so a Ctrl-C on the terminal reaches only the
run, which stops its workers itself.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
from typing import Callable, Dict, List, Optional

from tfx_pipeline import warm_start
from tfx_pipeline.config import PROJECT_ROOT

THREADS_ENV = 'FLOWER_TUNER_WORKER_THREADS'
# The module each worker process runs (`python -m`).
WORKER_MODULE = 'tfx_pipeline.parallel.worker'
# In the search's project folder: every trial lost with its worker, and what became of it.
LOST_TRIALS_FILE = 'lost_trials.json'


def cpu_count() -> int:
  """CPUs this process may run on (a container's or taskset's share, not the host's)."""
  try:
    return len(os.sched_getaffinity(0))
  except AttributeError:  # Not on Linux.
    return os.cpu_count() or 1


def threads_per_worker(workers: int, cpus: Optional[int] = None) -> int:
  """Each worker's share of the CPUs, at least one thread."""
  return max(1, (cpus or cpu_count()) // workers)


def describe_exit(returncode: int) -> str:
  if returncode < 0:
    try:
      return f'killed by {signal.Signals(-returncode).name}'
    except ValueError:
      return f'killed by signal {-returncode}'
  return f'exited with code {returncode}'


def record_lost(project_dir: str, lost: List[dict]) -> None:
  """Adds `lost` to the search's record of trials lost with their workers (kept across runs)."""
  records = load_lost(project_dir) + lost  # Before opening the file for writing empties it.
  with open(os.path.join(project_dir, LOST_TRIALS_FILE), 'w') as f:
    json.dump(records, f, indent=1)


def load_lost(project_dir: str) -> List[dict]:
  try:
    with open(os.path.join(project_dir, LOST_TRIALS_FILE)) as f:
      return json.load(f)
  except FileNotFoundError:
    return []


def describe_lost(record: dict) -> str:
  """`trial 02 (worker tuner1 killed by SIGKILL): rerun`."""
  return (
    f'trial {record["trial"]} (worker {record["worker"]} {record["exit"]}): {record["outcome"]}'
  )


@dataclasses.dataclass
class Worker:
  tuner_id: str
  process: subprocess.Popen  # Or warm_start.Started.
  log_path: str
  _reader: threading.Thread

  def log_tail(self, lines: int = 5) -> str:
    try:
      with open(self.log_path, errors='replace') as f:
        return ''.join(f.readlines()[-lines:]).strip()
    except FileNotFoundError:
      return ''


class WorkerPool:
  """Worker processes that run `spec_path`'s search against the chief at `address`."""

  def __init__(
    self, spec_path: str, address, threads: int, log_dir: str, echo: Callable[[str], None] = print
  ):
    self._spec_path = spec_path
    self._address = address
    self._threads = threads
    self._log_dir = log_dir
    self._echo = echo
    self.workers: Dict[str, Worker] = {}

  def _env(self, tuner_id: str) -> dict:
    host, port = self._address
    threads = str(self._threads)
    path = os.pathsep.join(p for p in (PROJECT_ROOT, os.environ.get('PYTHONPATH')) if p)
    return {
      **os.environ,
      'KERASTUNER_TUNER_ID': tuner_id,
      'KERASTUNER_ORACLE_IP': host,
      'KERASTUNER_ORACLE_PORT': str(port),
      'PYTHONPATH': path,
      'PYTHONUNBUFFERED': '1',
      # Read by TensorFlow and OpenMP at start-up; the worker also sets
      # TF's thread pools from THREADS_ENV before any op runs.
      'TF_NUM_INTRAOP_THREADS': threads,
      'TF_NUM_INTEROP_THREADS': threads,
      'OMP_NUM_THREADS': threads,
      THREADS_ENV: threads,
    }

  def start(self, tuner_id: str) -> Worker:
    """Starts (or restarts, under the same id) worker `tuner_id`."""
    os.makedirs(self._log_dir, exist_ok=True)
    log_path = os.path.join(self._log_dir, f'{tuner_id}.log')
    command = [sys.executable, '-m', WORKER_MODULE, self._spec_path]
    if warm_start.available():  # Forked with TF imported, away from the terminal's Ctrl-C too.
      process = warm_start.start(command, cwd=PROJECT_ROOT, env=self._env(tuner_id))
    else:
      process = subprocess.Popen(
        command,
        cwd=PROJECT_ROOT,
        env=self._env(tuner_id),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors='replace',
        # Not in the terminal's process group: the run stops its workers in order.
        start_new_session=True,
      )
    reader = threading.Thread(target=self._forward, args=(tuner_id, process, log_path), daemon=True)
    reader.start()
    worker = Worker(tuner_id, process, log_path, reader)
    self.workers[tuner_id] = worker
    return worker

  def _forward(self, tuner_id: str, process: subprocess.Popen, log_path: str) -> None:
    with open(log_path, 'a') as log:
      for line in process.stdout:
        log.write(line)
        log.flush()
        self._echo(f'[{tuner_id}] {line.rstrip()}')

  def exited(self) -> List[Worker]:
    """Workers whose process has ended since the last call (removed from the pool)."""
    done = [w for w in self.workers.values() if w.process.poll() is not None]
    for worker in done:
      worker._reader.join(timeout=5)  # Its last lines first.
      del self.workers[worker.tuner_id]
    return done

  def wait(self, timeout: float) -> None:
    """Waits for the running workers to exit by themselves."""
    for worker in list(self.workers.values()):
      try:
        worker.process.wait(timeout=timeout)
      except subprocess.TimeoutExpired:
        pass

  def stop(self) -> None:
    """Ends every worker still running: SIGTERM, then SIGKILL."""
    for worker in self.workers.values():
      if worker.process.poll() is None:
        worker.process.terminate()
    for worker in self.workers.values():
      try:
        worker.process.wait(timeout=10)
      except subprocess.TimeoutExpired:
        worker.process.kill()
        worker.process.wait()
      worker._reader.join(timeout=5)
    self.workers.clear()
