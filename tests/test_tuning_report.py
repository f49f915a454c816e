"""The tuning report holds every trial: table, CSV/JSON, PNG plots, TensorBoard HParams logs."""

import csv
import glob
import json
import os

import keras
import numpy as np
import pytest

from modules import tuner as tuner_module
from modules.module_config import ModuleConfig
from tfx_pipeline.local import report as tuning_report

PNG_MAGIC = b'\x89PNG\r\n\x1a\n'


@pytest.fixture(scope='module')
def finished_search(tmp_path_factory):
  """A finished Hyperband search on toy data, in a keras-tuner project folder (5 trials)."""

  def build(hp):
    model = keras.Sequential(
      [
        keras.Input((2,)),
        keras.layers.Dense(hp.Int('units', 1, 64), activation='relu'),
        keras.layers.Dense(1, activation='sigmoid'),
      ]
    )
    model.compile(
      hp.Choice('optimizer', ['sgd', 'adam']), 'binary_crossentropy', metrics=['accuracy']
    )
    return model

  directory = str(tmp_path_factory.mktemp('search'))
  tuner = tuner_module.make_tuner(
    ModuleConfig(tuner='hyperband', max_epochs=2, factor=2, seed=1), build, directory=directory
  )
  tuner.echo = lambda line: None
  x = np.random.default_rng(0).normal(size=(16, 2)).astype('float32')
  y = (x[:, 0] > 0).astype('float32')
  tuner.search(x, y, validation_data=(x, y), verbose=0)
  return directory, tuner.oracle.trials


def test_report_holds_every_trial(finished_search, tmp_path):
  directory, trials = finished_search
  report = tuning_report.write(directory, out_dir=str(tmp_path / 'report'))
  files = report['files']
  assert {r['trial'] for r in report['rows']} == set(trials)
  for row in report['rows']:
    trial = trials[row['trial']]
    assert row['score'] == trial.score and row['status'] == 'COMPLETED'
    assert row['hyperparameters'] == {
      'units': trial.hyperparameters.get('units'),
      'optimizer': trial.hyperparameters.get('optimizer'),
    }
    assert row['epochs'] >= 1 and row['seconds'] >= 0

  with open(files['csv']) as f:
    assert sorted(r['trial'] for r in csv.DictReader(f)) == sorted(trials)
  with open(files['json']) as f:
    assert len(json.load(f)) == len(trials)
  lines = open(files['table']).read().splitlines()
  assert lines[0].split() == ['trial', 'units', 'optimizer', 'score', 'epochs', 'time', 'status']
  assert len(lines) == 1 + len(trials)
  best = max(trials.values(), key=lambda t: t.score)
  assert sum(line.split()[1] == '*' for line in lines[1:]) == 1
  assert [line for line in lines if line.split()[1] == '*'][0].split()[0] == best.trial_id


def test_plots_are_valid_pngs(finished_search, tmp_path):
  import matplotlib.image

  report = tuning_report.write(finished_search[0], out_dir=str(tmp_path))
  plots = report['files']['plots']
  assert [os.path.basename(p) for p in plots] == [
    'score_by_trial.png',
    'score_by_hyperparameter.png',
  ]
  for path in plots:
    with open(path, 'rb') as f:
      assert f.read(8) == PNG_MAGIC
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100


def test_tensorboard_hparams_logs_one_run_per_trial(finished_search, tmp_path):
  import tensorflow as tf

  directory, trials = finished_search
  log_dir = tuning_report.write(directory, out_dir=str(tmp_path))['files']['tensorboard']
  tuning_report.write(directory, out_dir=str(tmp_path))  # Re-rendering replaces, not adds.
  runs = sorted(
    os.path.basename(os.path.dirname(p))
    for p in glob.glob(os.path.join(log_dir, 'trial_*', 'events.out.tfevents.*'))
  )
  assert runs == sorted(f'trial_{t}' for t in trials)
  plugins = set()
  for path in glob.glob(os.path.join(log_dir, '**', 'events.out.tfevents.*'), recursive=True):
    for event in tf.compat.v1.train.summary_iterator(path):
      plugins.update(v.metadata.plugin_data.plugin_name for v in event.summary.value)
  assert 'hparams' in plugins


def test_report_command_rerenders_from_the_folder(finished_search, capsys):
  from tfx_pipeline.local.cli import main

  directory, trials = finished_search
  assert main(['report', directory]) == 0
  out = capsys.readouterr().out
  assert f'{len(trials)} of {len(trials)} trials completed' in out
  assert os.path.exists(os.path.join(directory, tuning_report.REPORT_DIR, 'score_by_trial.png'))
  assert main(['report', os.path.join(directory, 'nothing')]) == 2
