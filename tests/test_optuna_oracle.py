"""--tuner tpe: the Optuna-backed keras-tuner oracle maps the space, learns, resumes and stops."""

import threading

import keras_tuner
import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from modules.search import parsing, search_space
from modules.tuning import optuna_oracle, pruning
from modules.tuning.optuna_oracle import OptunaOracle, OptunaSearch

OBJECTIVE = keras_tuner.Objective('score', 'max')
# A search-space file with nested conditions: schedule only for sgd, momentum only
# for sgd's heavy schedule.
CONDITIONAL = """
optimizer: {type: choice, values: [sgd, adam], default: adam}
schedule: {type: choice, values: [flat, heavy], default: flat,
           condition: {parent: optimizer, values: [sgd]}}
momentum: {type: float, min: 0.0, max: 0.9, default: 0.5,
           condition: {parent: schedule, values: [heavy]}}
units: {type: int, min: 8, max: 64, step: 8, default: 8}
"""


class ToyTuner(keras_tuner.Tuner):
  """No training: a trial's score is a known function of its values, best at x=0.7, y=0.2, 'b'."""

  def run_trial(self, trial, *args, **kwargs):
    hp = trial.hyperparameters
    bonus = {'a': 0.0, 'b': 0.3, 'c': 0.1}[hp['kind']]
    return {'score': bonus - (hp['x'] - 0.7) ** 2 - (hp['y'] - 0.2) ** 2}


def toy_space():
  hp = keras_tuner.HyperParameters()
  hp.Float('x', 0.0, 1.0)
  hp.Float('y', 0.0, 1.0)
  hp.Choice('kind', ['a', 'b', 'c'])
  return hp


def _oracle(tmp_path, hp, **kwargs):
  oracle = OptunaOracle(OBJECTIVE, hyperparameters=hp, **{'max_trials': 20, 'seed': 1, **kwargs})
  oracle._set_project_dir(str(tmp_path), 'search')
  oracle.verbose = 0
  return oracle


def _run(oracle, score=lambda values: 0.0, tuner_id='tuner0'):
  """One trial through the oracle as a tuner runs it; the trial (STOPPED when the search ends)."""
  trial = oracle.create_trial(tuner_id)
  if trial.status == 'RUNNING':
    values = trial.hyperparameters.values
    oracle.update_trial(trial.trial_id, {oracle.objective.name: score(values)})
    trial.status = 'COMPLETED'
    oracle.end_trial(trial)
  return trial


def _toy_search(tmp_path, oracle):
  tuner = ToyTuner(oracle=oracle, directory=str(tmp_path), project_name='search')
  tuner.search(verbose=0)
  return [oracle.trials[i] for i in oracle.start_order]


def test_every_kind_of_hyperparameter_maps_onto_its_optuna_distribution():
  hp = keras_tuner.HyperParameters()
  dims = {
    'choice': hp.Choice('choice', [16, 32, 64]),
    'flag': hp.Boolean('flag'),
    'count': hp.Int('count', 1, 10, step=3),
    'wide': hp.Int('wide', 1, 1000, sampling='log'),
    'grid': hp.Int('grid', 2, 64, step=2, sampling='log'),
    'rate': hp.Float('rate', 1e-4, 1e-1, sampling='log'),
    'drop': hp.Float('drop', 0.0, 0.5, step=0.2),
    'plain': hp.Float('plain', -1.0, 1.0),
    'decay': hp.Float('decay', 0.9, 0.999, sampling='reverse_log'),
    'fixed': hp.Fixed('fixed', 'same'),
  }
  dims = {name: optuna_oracle.dimension(hp._hps[name][0]) for name in dims}
  assert dims['choice'].distribution == CategoricalDistribution([16, 32, 64])
  assert dims['flag'].distribution == CategoricalDistribution([True, False])
  # Optuna's grid ends on the last step within the range, as keras-tuner's does.
  assert dims['count'].distribution == IntDistribution(1, 10, step=3)
  assert dims['wide'].distribution == IntDistribution(1, 1000, log=True)
  assert dims['rate'].distribution == FloatDistribution(1e-4, 1e-1, log=True)
  assert dims['drop'].distribution == FloatDistribution(0.0, 0.4, step=0.2)
  assert dims['plain'].distribution == FloatDistribution(-1.0, 1.0)
  assert dims['fixed'] is None  # Not searched: the value goes as it is.
  # A log range's step multiplies: Optuna searches the index of 2, 4, ... 64.
  grid = dims['grid']
  assert grid.distribution == IntDistribution(0, 5)
  assert [grid.to_value(i) for i in range(6)] == [2, 4, 8, 16, 32, 64]
  assert grid.to_param(16) == 3
  # reverse_log is log sampling of the range's mirror image: dense near its top.
  decay = dims['decay']
  assert decay.distribution == FloatDistribution(0.9, 0.999, log=True)
  assert decay.to_value(0.9) == pytest.approx(0.999) and decay.to_param(0.999) == 0.9
  assert decay.to_value(decay.to_param(0.95)) == pytest.approx(0.95)


def test_drawn_values_are_ones_keras_tuner_can_take(tmp_path):
  hp = keras_tuner.HyperParameters()
  hp.Int('count', 1, 10, step=3)
  hp.Int('grid', 2, 64, step=2, sampling='log')
  hp.Float('decay', 0.9, 0.999, sampling='reverse_log')
  hp.Float('drop', 0.0, 0.5, step=0.2)
  hp.Fixed('fixed', 'same')
  oracle = _oracle(tmp_path, hp, max_trials=25, n_startup_trials=5)
  seen = [_run(oracle, lambda v: v['count'] - v['drop']).hyperparameters.values for _ in range(25)]
  for values in seen:
    assert values['count'] in (1, 4, 7, 10)
    assert values['grid'] in (2, 4, 8, 16, 32, 64) and isinstance(values['grid'], int)
    assert 0.9 <= values['decay'] <= 0.999
    assert min(abs(values['drop'] - v) for v in (0.0, 0.2, 0.4)) < 1e-9
    assert values['fixed'] == 'same'
  assert {v['count'] for v in seen} == {1, 4, 7, 10}  # Every grid point is reachable.
  # Optuna's study saw the searched values, in its own terms, and not the fixed one.
  told = oracle.study.trials[-1]
  assert told.state == TrialState.COMPLETE and 'fixed' not in told.params
  assert told.params['count'] == seen[-1]['count']


def test_a_conditional_hyperparameter_gets_no_value_where_its_parent_excludes_it(tmp_path):
  hp = search_space.from_mapping(parsing.parse(CONDITIONAL, json_file=False)).hyperparameters()
  oracle = _oracle(tmp_path, hp, max_trials=40, n_startup_trials=5)
  for _ in range(40):
    values = _run(oracle, lambda v: v.get('momentum', 0.0)).hyperparameters.values
    heavy = values['optimizer'] == 'sgd' and values.get('schedule') == 'heavy'
    assert ('schedule' in values) == (values['optimizer'] == 'sgd'), values
    assert ('momentum' in values) == heavy, values
  # Optuna was never asked for an inactive one either (TPE models what it was asked).
  for trial in oracle.study.trials:
    assert ('schedule' in trial.params) == (trial.params['optimizer'] == 'sgd')
    assert ('momentum' in trial.params) == (trial.params.get('schedule') == 'heavy')
  searched = [t.params for t in oracle.study.trials]
  assert any('momentum' in p for p in searched) and any('schedule' not in p for p in searched)


def test_one_name_in_two_scopes_gets_two_optuna_names(tmp_path):
  hp = keras_tuner.HyperParameters()
  hp.Choice('model', ['mlp', 'cnn'])
  with hp.conditional_scope('model', ['mlp']):
    hp.Choice('width', ['narrow', 'wide'])
  with hp.conditional_scope('model', ['cnn']):
    hp.Choice('width', ['small', 'large', 'huge'])
  names = ['model', "width|model=['mlp']", "width|model=['cnn']"]
  assert optuna_oracle.optuna_names(hp.space) == names
  # Optuna refuses to change a categorical's choices under one name. keras-tuner 1.4.7
  # mangles such values itself (docs/STACK.md), so only Optuna's side is checked.
  oracle = _oracle(tmp_path, hp, max_trials=8, n_startup_trials=2)
  assert all(_run(oracle).status == 'COMPLETED' for _ in range(3))
  asked = [(t.params['model'], set(t.params) - {'model'}) for t in oracle.study.trials]
  # Never the other scope's name; keras-tuner 1.4.7 may leave the first scope's `width`
  # inactive when the second declares it too, and then it is not asked at all.
  assert all(width <= {f"width|model=['{model}']"} for model, width in asked), asked
  assert any(width for _, width in asked)


def test_tpe_beats_random_search_on_a_toy_objective(tmp_path):
  tpe = _oracle(tmp_path / 'tpe', toy_space(), max_trials=30, seed=3, n_startup_trials=10)
  trials = _toy_search(tmp_path / 'tpe', tpe)
  scores = [t.score for t in trials]
  assert len(scores) == 30 and all(t.status == 'COMPLETED' for t in trials)
  random = keras_tuner.oracles.RandomSearchOracle(
    objective=OBJECTIVE, max_trials=30, hyperparameters=toy_space(), seed=3
  )
  random_best = max(t.score for t in _toy_search(tmp_path / 'random', random))
  # After its 10 random trials, TPE's proposals score better than those did, and
  # its best beats keras-tuner's random search given the same 30 trials.
  assert sum(scores[20:]) / 10 > sum(scores[:10]) / 10 + 0.1
  assert max(scores) > max(scores[:10]) and max(scores) > random_best
  assert tpe.study.best_value == max(scores)


def test_a_resumed_oracle_rebuilds_the_study_from_the_saved_trials(tmp_path):
  first = _oracle(tmp_path, toy_space(), max_trials=8)
  tuner = ToyTuner(oracle=first, directory=str(tmp_path), project_name='search')
  first.max_trials = 5  # As the time budget stops a search: the rest is left to a rerun.
  tuner.search(verbose=0)
  done = [first.trials[i] for i in first.end_order]
  assert len(done) == 5

  # What keras-tuner does for a rerun (overwrite=False): a new oracle reloads from disk.
  again = _oracle(tmp_path, toy_space(), max_trials=8)
  resumed = ToyTuner(oracle=again, directory=str(tmp_path), project_name='search')
  assert again is resumed.oracle and sorted(again.trials) == sorted(first.trials)
  rebuilt = again.study.get_trials(states=(TrialState.COMPLETE,))
  assert [t.value for t in rebuilt] == [t.score for t in done]
  assert [t.params for t in rebuilt] == [
    {k: t.hyperparameters.values[k] for k in ('x', 'y', 'kind')} for t in done
  ]
  resumed.search(verbose=0)
  assert len(again.trials) == 8 and len(again.study.get_trials(states=(TrialState.COMPLETE,))) == 8


def test_a_trial_interrupted_before_a_resume_is_rerun_and_then_learnt_from(tmp_path):
  first = _oracle(tmp_path, toy_space())
  for _ in range(3):
    _run(first, lambda v: v['x'])
  interrupted = first.create_trial('tuner0')  # Ctrl-C: it never ends.

  again = _oracle(tmp_path, toy_space())
  again.reload()
  assert len(again.study.trials) == 3
  rerun = _run(again, lambda v: v['x'])
  assert rerun.trial_id == interrupted.trial_id
  last = again.study.trials[-1]
  assert last.state == TrialState.COMPLETE and last.value == interrupted.hyperparameters['x']


def test_failed_and_invalid_trials_are_told_as_failed(tmp_path):
  oracle = _oracle(tmp_path, toy_space(), max_retries_per_trial=1)
  for status in ('FAILED', 'INVALID'):
    trial = oracle.create_trial('tuner0')
    trial.status = status
    oracle.end_trial(trial)
  states = [t.state for t in oracle.study.trials]
  assert states == [TrialState.FAIL, TrialState.FAIL]
  # The INVALID one is retried with its values; completed, the study learns from it.
  retried = _run(oracle, lambda v: 0.5)
  assert retried.trial_id == trial.trial_id
  assert oracle.study.trials[-1].value == 0.5 and oracle.study.trials[-1].state.name == 'COMPLETE'


def test_an_exhausted_space_ends_the_search(tmp_path):
  hp = keras_tuner.HyperParameters()
  hp.Choice('kind', ['a', 'b', 'c'])
  hp.Boolean('flag')
  hp.Fixed('x', 0.5)
  hp.Fixed('y', 0.2)
  oracle = _oracle(tmp_path, hp, max_trials=20, n_startup_trials=2)
  trials = _toy_search(tmp_path, oracle)
  points = {(t.hyperparameters['kind'], t.hyperparameters['flag']) for t in trials}
  # Every one of the 6 points, once each, then STOPPED well before max_trials.
  assert len(trials) == 6 and len(points) == 6
  assert _run(oracle).status == 'STOPPED'
  # The report reads keras-tuner's own trial files, whichever oracle wrote them.
  from tfx_pipeline.local import report

  rows = report.load_trials(str(tmp_path / 'search'))
  assert [(r['status'], r['score']) for r in rows] == [('COMPLETED', t.score) for t in trials]


def test_parallel_workers_share_the_chiefs_oracle_over_grpc(tmp_path, monkeypatch):
  from keras_tuner.src.distribute import oracle_client

  from tfx_pipeline.parallel import chief

  oracle = _oracle(tmp_path, toy_space(), max_trials=12, n_startup_trials=3)
  server = chief.OracleServer(oracle).start()
  monkeypatch.setenv('KERASTUNER_ORACLE_IP', server.address[0])
  monkeypatch.setenv('KERASTUNER_ORACLE_PORT', str(server.port))
  monkeypatch.setenv('KERASTUNER_TUNER_ID', 'unused')
  ran = []

  def worker(tuner_id):
    client = oracle_client.OracleClient(oracle)
    while (trial := _run(client, lambda v: v['x'] - v['y'], tuner_id)).status != 'STOPPED':
      ran.append(trial.trial_id)

  workers = [threading.Thread(target=worker, args=(f'tuner{i}',)) for i in range(3)]
  try:
    for w in workers:
      w.start()
    for w in workers:
      w.join(timeout=60)
  finally:
    server.stop()
  assert sorted(ran) == sorted(oracle.trials) and len(ran) == 12
  told = oracle.study.get_trials(states=(TrialState.COMPLETE,))
  assert sorted(t.value for t in told) == sorted(t.score for t in oracle.trials.values())


def test_tuner_tpe_builds_an_optuna_search_that_prunes(tmp_path):
  from modules import tuner as tuner_module
  from modules.module_config import ModuleConfig
  from tests.conftest import toy_hypermodel

  config = ModuleConfig(tuner='tpe', max_trials=5, max_epochs=3, prune='median', prune_warmup=1)
  tuner = tuner_module.make_tuner(config, toy_hypermodel, directory=str(tmp_path))
  oracle = tuner.oracle
  assert isinstance(tuner, OptunaSearch) and isinstance(oracle, OptunaOracle)
  assert oracle.max_trials == 5 and oracle.seed == config.seed and oracle.n_startup_trials == 2
  assert oracle.study.direction == optuna.study.StudyDirection.MAXIMIZE
  assert tuner_module.trial_count(config) == 5 and tuner_module.epoch_count(config) == 15
  # The median pruner answers through this oracle as through keras-tuner's own.
  oracle.verbose = 0
  for value in (0.9, 0.8):
    _run(oracle, lambda v: value)
  late = oracle.create_trial('tuner0')
  assert oracle.update_trial(late.trial_id, {'val_accuracy': 0.1}).status == pruning.STOPPED
  # Optuna's default, 10 random trials, would leave a default 8-trial search all random.
  assert [optuna_oracle.startup_trials(n) for n in (None, 8, 12, 30)] == [10, 2, 4, 10]
