"""Trial checkpoints a search still needs; the others are deleted as trials end.

keras-tuner writes each trial's best-epoch weights (`checkpoint.weights.h5`)
into the trial's folder and deletes none, so a search folder grows by one model
per trial: with a fine-tuned backbone, tens of GB (keras-tuner issue 288). What
reads them:
- Hyperband builds a trial of a later round from its parent's checkpoint
  (`tuner/trial_id`), and a resumed search restarts an unfinished trial the
  same way;
- `get_best_models()` loads the best trial's.
TFX's Tuner reads none: it writes the best hyperparameters, and the Trainer
trains afresh. So after each trial the search keeps the checkpoints of the best
trial, of unfinished trials, of parents whose promoted trial has not finished,
and of every trial in a round that a Hyperband bracket may still promote from;
it deletes the others (trial.json and the rest of the folder stay).
"""

from __future__ import annotations

import os
from typing import Callable, Set

# Trial states after which a trial writes nothing more.
ENDED = ('COMPLETED', 'FAILED', 'INVALID', 'STOPPED')


def needed(oracle) -> Set[str]:
  """Ids of the trials whose checkpoints the search may still read (a local oracle)."""
  trials = oracle.trials
  keep = {trial_id for trial_id, trial in trials.items() if trial.status not in ENDED}
  best = oracle.get_best_trials(1)
  if best:
    keep.add(best[0].trial_id)
  for trial in trials.values():
    parent = trial.hyperparameters.values.get('tuner/trial_id')
    if parent is not None and trial.status not in ENDED:
      keep.add(parent)
  # Hyperband: a round whose next round is not full yet may still have trials promoted.
  for bracket in getattr(oracle, '_brackets', None) or []:
    rounds = bracket['rounds']
    for number in range(len(rounds) - 1):
      if len(rounds[number + 1]) < oracle._get_size(bracket['bracket_num'], number + 1):
        keep.update(info['id'] for info in rounds[number])
  return keep


def prune(oracle, checkpoint_path: Callable[[str], str]) -> int:
  """Deletes the checkpoints of trials the search no longer needs; returns the bytes freed.

  `checkpoint_path(trial_id)` is the tuner's checkpoint file of a trial.
  """
  keep = needed(oracle)
  freed = 0
  for trial_id in oracle.trials:
    path = checkpoint_path(trial_id)
    if trial_id in keep or not os.path.isfile(path):
      continue
    freed += os.path.getsize(path)
    os.remove(path)
  return freed
