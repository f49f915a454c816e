"""--prune median: a clearly worse trial stops early, the best runs to the end, both are scored."""

import json
import os

import keras
import keras_tuner
import numpy as np
import pytest

from modules import tuner as tuner_module
from modules.module_config import ModuleConfig
from modules.tuning import hooks, pruning
from tfx_pipeline.local import report as tuning_report

EPOCHS = 4


class _Toy(keras_tuner.HyperModel):
  """A toy classifier that learns, except in the fits listed in `bad` (no learning: chance)."""

  def __init__(self, bad):
    super().__init__()
    self.bad, self.fits = set(bad), 0

  def build(self, hp):
    keras.utils.set_random_seed(7)  # Every good trial learns alike: none is below their median.
    hp.Int('units', 4, 64)  # Something to search; the model is the same.
    model = keras.Sequential(
      [
        keras.Input((2,)),
        keras.layers.Dense(16, activation='relu'),
        keras.layers.Dense(1, activation='sigmoid'),
      ]
    )
    model.compile(keras.optimizers.Adam(0.05), 'binary_crossentropy', metrics=['accuracy'])
    return model

  def fit(self, hp, model, *args, **kwargs):
    self.fits += 1
    if self.fits in self.bad:
      for weights in model.weights:
        weights.assign(np.zeros(weights.shape, 'float32'))
      model.optimizer.learning_rate.assign(0.0)  # Stuck at the majority class.
    return model.fit(*args, **kwargs)


def _search(tmp_path, tuner, bad, warmup=3, trials=5):
  keras.utils.set_random_seed(1)
  config = ModuleConfig(
    tuner=tuner,
    max_trials=trials,
    max_epochs=EPOCHS,
    prune='median',
    prune_warmup=warmup,
    seed=1,
  )
  search = tuner_module.make_tuner(config, _Toy(bad), directory=str(tmp_path))
  lines = []
  search.echo = lines.append
  rng = np.random.default_rng(0)
  x = rng.normal(size=(96, 2)).astype('float32')
  y = (x[:, 0] + x[:, 1] > 0.8).astype('float32')  # About 3 in 4 negative.
  search.search(x, y, validation_data=(x, y), epochs=EPOCHS, batch_size=8, verbose=0)
  return search, [line for line in lines if line.startswith('trial ')]


def _run(search, trial_id):
  with open(os.path.join(search.get_trial_dir(trial_id), hooks.RUN_FILE)) as f:
    return json.load(f)


@pytest.fixture(scope='module')
def worse_fourth(tmp_path_factory):
  """`tuner` -> (search, lines): 5 trials, the 4th clearly worse; each run once for the module."""
  searches = {}

  def search(tuner):
    if tuner not in searches:
      searches[tuner] = _search(tmp_path_factory.mktemp(tuner), tuner, bad={4})
    return searches[tuner]

  return search


@pytest.mark.parametrize('tuner', ['random', 'bayesian'])
def test_a_clearly_worse_trial_is_pruned_and_the_best_is_untouched(worse_fourth, tuner):
  search, lines = worse_fourth(tuner)
  oracle = search.oracle
  trials = oracle.trials
  # The 4th trial (id 3), after 3 completed ones, is below their median after its first epoch.
  assert oracle.pruned == {'3': 1}
  assert _run(search, '3')['epochs'] == 1 and _run(search, '3')['pruned_at_epoch'] == 1
  assert '[pruned at epoch 1]' in lines[3] and not any('pruned' in x for x in lines[:3] + lines[4:])
  # It is still a scored, completed trial: the oracle learns from it.
  assert trials['3'].status == 'COMPLETED' and trials['3'].score < 0.8
  if tuner == 'bayesian':
    _, scores = oracle._vectorize_trials()
    assert len(scores) == len(trials)
  (best,) = oracle.get_best_trials(1)
  assert best.trial_id != '3' and best.score > 0.9
  assert len(best.metrics.get_history('val_accuracy')) == EPOCHS  # Trained to the end.
  assert all(_run(search, t)['epochs'] == EPOCHS for t in trials if t != '3')

  report = tuning_report.write(search.project_dir)
  statuses = {r['trial']: r['status'] for r in report['rows']}
  assert statuses == {
    '0': 'COMPLETED',
    '1': 'COMPLETED',
    '2': 'COMPLETED',
    '3': 'PRUNED',
    '4': ('COMPLETED'),
  }
  printed = []
  tuning_report.print_report(report, printed.append)
  assert printed[0] == 'tuning report: 5 of 5 trials completed, 1 of them pruned (* best)'
  marked = [line for line in report['table'].splitlines() if line.split()[1] == '*']
  assert marked[0].split()[0] == best.trial_id


def test_no_trial_is_pruned_during_the_warmup(tmp_path):
  search, lines = _search(tmp_path, 'random', bad={2}, warmup=3, trials=3)
  assert search.oracle.pruned == {} and not any('pruned' in line for line in lines)
  assert _run(search, '1')['epochs'] == EPOCHS


def test_the_median_rule():
  assert pruning.median_says_prune(0.5, [0.6, 0.9, 0.2])
  assert not pruning.median_says_prune(0.6, [0.6, 0.9, 0.2])  # At the median: kept.
  assert not pruning.median_says_prune(0.1, [])  # Nothing to compare with.
  assert pruning.median_says_prune(2.0, [1.0, 1.5], direction='min')


def test_a_resumed_search_still_knows_its_pruned_trials(worse_fourth):
  search, _ = worse_fourth('random')
  config = ModuleConfig(
    tuner='random', max_trials=5, max_epochs=EPOCHS, prune='median', prune_warmup=3, seed=1
  )
  reloaded = tuner_module.make_tuner(config, _Toy(set()), directory=search.directory)
  assert reloaded.oracle.pruned == {'3': 1}


def test_pruning_reaches_workers_through_the_chief(tmp_path, monkeypatch):
  """Workers report epochs over keras-tuner's gRPC protocol; the chief's oracle prunes."""
  from keras_tuner.src.distribute import oracle_client

  from tfx_pipeline.parallel.chief import OracleServer

  config = ModuleConfig(
    tuner='random', max_trials=6, max_epochs=EPOCHS, prune='median', prune_warmup=2, seed=1
  )
  chief = tuner_module.make_tuner(config, _Toy(set()), directory=str(tmp_path / 'chief'))
  server = OracleServer(chief.oracle).start()
  try:
    monkeypatch.setenv('KERASTUNER_ORACLE_IP', server.address[0])
    monkeypatch.setenv('KERASTUNER_ORACLE_PORT', str(server.port))
    monkeypatch.setenv('KERASTUNER_TUNER_ID', 'tuner0')
    # A worker makes its tuner as the chief does; keras-tuner makes its oracle remote.
    worker = tuner_module.make_tuner(config, _Toy(set()), directory=str(tmp_path / 'w')).oracle
    assert isinstance(worker, oracle_client.OracleClient)

    def run(scores):
      trial = worker.create_trial('tuner0')
      answers = []
      for epoch, score in enumerate(scores):
        answer = worker.update_trial(trial.trial_id, {'val_accuracy': score}, step=epoch)
        answers.append(answer.status)
        if answer.status == 'STOPPED':
          break
      trial.status = 'COMPLETED'
      worker.end_trial(trial)
      return answers

    assert run([0.8, 0.9, 0.9, 0.95]) == ['RUNNING'] * 4
    assert run([0.7, 0.9, 0.95, 0.95]) == ['RUNNING'] * 4
    assert run([0.3, 0.3, 0.3, 0.3]) == ['STOPPED']  # Below the median (0.75) after epoch 1.
    assert chief.oracle.pruned == {'2': 1}
    assert chief.oracle.trials['2'].status == 'COMPLETED'
  finally:
    server.stop()
