"""What becomes of a parallel search's worker that exits: the `Supervisor`'s decision.

A pure function of what the chief knows then (tested without processes): a
worker that dies mid-trial is replaced under the same tuner id, and its trial
rerun up to the chief's retries, then ended as FAILED, so the search always
ends. The supervisor also keeps the record of the trials lost with a worker.
"""

from __future__ import annotations

import collections
import dataclasses
import time
from typing import List, Optional

from tfx_pipeline.parallel import pool

# What the chief does about a worker that exited.
IGNORE, RESTART, GIVE_UP = 'ignore', 'restart', 'give up'


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
    self.lost: List[dict] = []  # Every trial lost with a worker, when, and its outcome.
    self._deaths = collections.Counter()
    # Enough for every trial to lose a worker once and every worker to die idle once.
    self._replacements_left = workers + (max_trials or workers) * (max_retries + 1)

  def on_exit(self, worker: WorkerExit) -> Decision:
    decision = self._decide(worker)
    if decision.lost:
      self.lost.append({**decision.lost, 'time': time.time()})
    return decision

  def record(self, project_dir: str) -> None:
    """Adds this search's lost trials to those of earlier runs in `project_dir`."""
    if self.lost:
      pool.record_lost(project_dir, self.lost)

  def _decide(self, worker: WorkerExit) -> Decision:
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
