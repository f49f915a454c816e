"""A progress line and a run record per trial; a spent time budget keeps the best so far."""

import json
import os
import re

import numpy as np

from modules import tuner as tuner_module
from modules.module_config import ModuleConfig
from modules.tuning import hooks
from tests.conftest import toy_hypermodel


def _search(tmp_path, **options):
  config = ModuleConfig(seed=1, **options)
  tuner = tuner_module.make_tuner(config, toy_hypermodel, directory=str(tmp_path))
  lines = []
  tuner.echo = lines.append
  x = np.random.default_rng(0).normal(size=(16, 2)).astype('float32')
  y = (x[:, 0] > 0).astype('float32')
  tuner.search(x, y, validation_data=(x, y), epochs=config.max_epochs, verbose=0)
  return tuner, lines


def test_one_progress_line_and_run_record_per_trial(tmp_path):
  tuner, lines = _search(tmp_path, tuner='random', max_trials=3, max_epochs=2)
  progress = [line for line in lines if line.startswith('trial ')]
  assert [line.split(':')[0] for line in progress] == ['trial 1/3', 'trial 2/3', 'trial 3/3']
  trials = list(tuner.oracle.trials.values())
  best = max(t.score for t in trials)
  assert f'best={best:.4f}' in progress[-1]
  for line, trial in zip(progress, sorted(trials, key=lambda t: t.trial_id)):
    number = progress.index(line) + 1
    assert f'trial {number}/3: units={trial.hyperparameters.get("units")} score' in line
    assert f'score={trial.score:.4f}' in line
    assert 'elapsed ' in line and ' eta ' in line
  assert progress[-1].endswith('eta 0s')
  for trial in trials:
    with open(os.path.join(tuner.get_trial_dir(trial.trial_id), hooks.RUN_FILE)) as f:
      record = json.load(f)
    assert record['status'] == 'COMPLETED' and record['epochs'] == 2 and record['seconds'] >= 0


def test_hyperband_progress_counts_its_own_schedule(tmp_path):
  tuner, lines = _search(tmp_path, tuner='hyperband', max_epochs=3, factor=2)
  trials, _ = tuner_module.hyperband_schedule(3, 2)
  progress = [line for line in lines if line.startswith('trial ')]
  assert len(progress) == trials
  assert progress[-1].startswith(f'trial {trials}/{trials}:')
  assert 'tuner/' not in progress[-1]
  # The ETA counts keras-tuner's planned epochs, so it reaches zero exactly at the end.
  assert progress[-1].endswith('eta 0s')
  assert not any(line.endswith('eta 0s') for line in progress[:-1])


def test_spent_budget_starts_no_new_trial_and_keeps_the_best(tmp_path):
  tuner, lines = _search(
    tmp_path, tuner='random', max_trials=5, max_epochs=1, tuning_budget_minutes=0
  )
  assert len(tuner.oracle.trials) == 1
  assert any(
    re.match(r'tuning budget of 0 min spent: no new trials after 1 \(of 5\)', line)
    for line in lines
  ), lines
  (trial,) = tuner.oracle.trials.values()
  assert tuner.get_best_hyperparameters()[0].values == trial.hyperparameters.values
  # What TFX's Tuner executor asks for after the search.
  assert [t.trial_id for t in tuner.oracle.get_best_trials(tuner.oracle.max_trials)] == [
    trial.trial_id
  ]


def test_a_parallel_search_chief_keeps_the_same_budget(tmp_path):
  from tfx_pipeline.parallel.chief import OracleServer

  config = ModuleConfig(tuner='random', max_trials=5, tuning_budget_minutes=0)
  tuner = tuner_module.make_tuner(config, toy_hypermodel, directory=str(tmp_path))
  server = OracleServer(tuner.oracle)  # Not started: the check needs no worker.
  assert server.stop_if_spent(tuner.budget) == (
    'tuning budget of 0 min spent: no new trials after 1 (of 5); keeping the best so far'
  )
  assert tuner.oracle.max_trials == 1
  assert server.stop_if_spent(tuner.budget) is None  # Said once.


def test_tuning_budget_flag_reaches_the_tuner_options():
  from tfx_pipeline.local.cli import config_from_args, run_parser

  config = config_from_args(run_parser().parse_args(['--tuning-budget', '2.5']))
  assert config.module.tuning_budget_minutes == 2.5
  assert config_from_args(run_parser().parse_args([])).module.tuning_budget_minutes is None


class _Console:
  def __init__(self):
    self.lines, self.rows = [], {}

  def line(self, text):
    self.lines.append(text)

  def status(self, key, text):
    if text is None:
      self.rows.pop(key, None)
    else:
      self.rows[key] = text


def test_a_parallel_search_chief_numbers_trials_as_they_end(tmp_path):
  """Two trials that end between two looks are two lines, numbered in turn, with the ETA."""
  import keras_tuner

  from modules.runtime import console
  from tfx_pipeline.parallel.watch import TrialWatch

  config = ModuleConfig(tuner='random', max_trials=3, max_epochs=2)
  tuner = tuner_module.make_tuner(config, toy_hypermodel, directory=str(tmp_path))
  oracle = tuner.oracle
  shown = _Console()
  console.install(shown)
  try:
    watch = TrialWatch(tuner)
    watch.start()
    trials = [oracle.create_trial(f'tuner{i}') for i in range(2)]
    watch.poll()
    assert sorted(shown.rows) == ['tuner0', 'tuner1']
    assert shown.rows['tuner1'].startswith('[tuner1] trial 2/3 epoch 1/2 val_accuracy - ')
    for trial, score in zip(trials, (0.5, 0.75)):
      oracle.update_trial(trial.trial_id, {'val_accuracy': score})
      trial.status = keras_tuner.engine.trial.TrialStatus.COMPLETED
      oracle.end_trial(trial)
    watch.poll()
  finally:
    console.install(None)
  assert [line.split(':')[0] for line in shown.lines] == ['trial 1/3', 'trial 2/3']
  assert 'best=0.7500' in shown.lines[1] and ' eta ' in shown.lines[1]
  assert shown.rows == {}
