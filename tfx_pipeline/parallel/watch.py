"""What a parallel search's chief shows: a line per ended trial, a status row per worker.

`chief.parallel_search` polls a `TrialWatch` between its other events.
"""

from __future__ import annotations

import json
import os
from typing import Dict

import keras_tuner

from modules.runtime import console
from modules.tuning import hooks, search_progress


def _trial_states(oracle) -> Dict[str, tuple]:
  """Every trial id -> (the tuner id running it or None, whether it has ended)."""
  running = {trial.trial_id: tuner_id for tuner_id, trial in oracle.ongoing_trials.items()}
  return {
    trial_id: (running.get(trial_id), trial.status in search_progress.ENDED)
    for trial_id, trial in oracle.trials.items()
  }


@keras_tuner.synchronized
def _under_lock(oracle, call):
  return call()


class TrialWatch:
  """The search's progress as the chief sees it: a line per ended trial, a status per worker.

  Workers' oracles are remote, so their own lines can only number trials by
  id; the chief has the oracle, and makes the lines a sequential search makes
  (modules/tuning/search_progress.py's SearchProgress): the trial's number among those
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
