"""--warm-start: an earlier search's fitting trials teach a TPE or Bayesian search, never re-run.

(tests/test_warm_start.py is the process fork server's, tfx_pipeline/warm_start.py.)
"""

import os

import keras_tuner
import pytest
from optuna.trial import TrialState

from modules.module_config import ModuleConfig
from modules.search import parsing, search_space
from modules.tuning import space_fit, warm_trials
from modules.tuning import state as tuning_state
from tests.test_optuna_oracle import OBJECTIVE, ToyTuner, _oracle, toy_space
from tfx_pipeline import warm_search
from tfx_pipeline.config import PipelineConfig
from tfx_pipeline.local import report

SPACE = """
optimizer: {type: choice, values: [sgd, adam], default: adam}
momentum: {type: float, min: 0.0, max: 0.9, step: 0.3, default: 0.0,
           condition: {parent: optimizer, values: [sgd]}}
units: {type: int, min: 8, max: 64, step: 8, default: 8}
grid: {type: int, min: 2, max: 32, step: 2, sampling: log, default: 2}
rate: {type: float, min: 1.0e-4, max: 1.0e-2, sampling: log, default: 1.0e-3}
flip: {type: boolean, default: false}
seed_units: {type: fixed, value: 64}
"""
GOOD = {'optimizer': 'sgd', 'momentum': 0.6, 'units': 16, 'grid': 8, 'rate': 1e-3, 'flip': True}
# A trial of SPACE for the built-in model: what it leaves out is fixed at the built-in defaults.
EARLIER = {**GOOD, 'seed_units': 64, 'dense_activation': 'relu', 'learning_rate': 1e-3}


def _space(text=SPACE):
  return search_space.from_mapping(parsing.parse(text, json_file=False)).hyperparameters()


@pytest.mark.parametrize(
  'change, why',
  [
    ({}, None),
    ({'optimizer': 'rmsprop'}, 'optimizer rmsprop not in [sgd, adam]'),
    ({'momentum': 0.5}, 'momentum 0.5 off its step 0.3 from 0'),
    ({'momentum': 1.2}, 'momentum 1.2 > max 0.9'),
    ({'units': 4}, 'units 4 < min 8'),
    ({'units': 20}, 'units 20 off its step 8 from 8'),
    ({'units': 16.5}, 'units 16.5 is not a whole number'),
    ({'grid': 6}, 'grid 6 not in [2, 4, 8, 16, 32]'),
    ({'rate': 0.1}, 'rate 0.1 > max 0.01'),
    ({'flip': 1}, 'flip 1 is not true or false'),
    ({'seed_units': 32}, 'seed_units 32 != fixed 64'),
    ({'dropout': 0.1}, 'dropout is not in the new space'),
    ({'units': None}, 'units was not searched'),
  ],
)
def test_a_trial_fits_when_the_new_space_allows_every_active_value(change, why):
  values = {**GOOD, 'seed_units': 64, **change}
  values = {k: v for k, v in values.items() if v is not None}
  kept, reason = space_fit.fit(values, _space())
  assert reason == why
  assert (kept == values) if why is None else kept is None


def test_conditions_decide_which_values_count():
  space = _space()
  # adam: momentum is inactive, so it need not be there, and an old value is dropped.
  adam = {**GOOD, 'optimizer': 'adam', 'seed_units': 64}
  kept, why = space_fit.fit({k: v for k, v in adam.items() if k != 'momentum'}, space)
  assert why is None and 'momentum' not in kept
  kept, why = space_fit.fit({**adam, 'momentum': 5.0}, space)
  assert why is None and 'momentum' not in kept
  # sgd: momentum is active, so it must be there and allowed.
  sgd = {k: v for k, v in {**GOOD, 'seed_units': 64}.items() if k != 'momentum'}
  assert space_fit.fit(sgd, space) == (None, 'momentum was not searched')


def _payload(points, score=10.0):
  """Warm trials at `points` ((x, y, kind)), scored far above anything the toy search reaches."""
  trials = [
    {'trial_id': f'{i:02d}', 'values': {'x': x, 'y': y, 'kind': k}, 'score': score}
    for i, (x, y, k) in enumerate(points)
  ]
  return {'source': '/earlier/search', 'trials': trials}


POINTS = [(0.7, 0.2, 'b'), (0.6, 0.3, 'b'), (0.1, 0.9, 'a'), (0.9, 0.1, 'c')]


def _search(tmp_path, oracle, warm, max_trials=None):
  tuner = ToyTuner(oracle=oracle, directory=str(tmp_path), project_name='search')
  lines = []
  warm_trials.feed(tuner.oracle, warm, echo=lines.append)
  if max_trials:
    tuner.oracle.max_trials = max_trials
  tuner.search(verbose=0)
  return tuner, lines


def _check_own_trials_only(tuner, count):
  oracle = tuner.oracle
  own = [oracle.trials[i] for i in oracle.start_order]
  assert len(own) == count == len(oracle.trials) and all(i.isdigit() for i in oracle.trials)
  assert not any(warm_trials.is_warm(t) for t in own)
  warm_points = {tuple(t.hyperparameters.values[k] for k in ('x', 'y', 'kind')) for t in own}
  assert not warm_points & set(POINTS)  # None re-run.
  best = tuner.get_best_hyperparameters(1)[0].values
  assert (
    oracle.get_best_trials(1)[0] in own
    and best == oracle.get_best_trials(1)[0].hyperparameters.values
  )


def test_tpe_learns_from_warm_trials_that_run_no_trial_and_are_never_the_best(tmp_path):
  oracle = _oracle(tmp_path, toy_space(), max_trials=6, n_startup_trials=3)
  tuner, _ = _search(tmp_path, oracle, _payload(POINTS))
  # Optuna's study holds the 4 warm trials, then the search's own 6.
  told = oracle.study.get_trials(states=(TrialState.COMPLETE,))
  assert [t.value for t in told[:4]] == [10.0] * 4 and len(told) == 10
  assert told[0].params == {'x': 0.7, 'y': 0.2, 'kind': 'b'}
  _check_own_trials_only(tuner, 6)
  # Even where the oracle shows them (while it proposes), the best is one of its own.
  oracle.trials.update(oracle.warm_trials)
  assert not warm_trials.is_warm(oracle.get_best_trials(1)[0])


def test_a_warm_point_counts_as_tried(tmp_path):
  hp = keras_tuner.HyperParameters()
  hp.Fixed('x', 0.7)
  hp.Fixed('y', 0.2)
  hp.Choice('kind', ['a', 'b', 'c'])
  oracle = _oracle(tmp_path, hp, max_trials=5, n_startup_trials=1)
  tuner, _ = _search(tmp_path, oracle, _payload([(0.7, 0.2, 'a'), (0.7, 0.2, 'b')]))
  # Of the 3 points, 2 are warm: the search runs the third, and then has none left.
  assert [t.hyperparameters['kind'] for t in oracle.trials.values()] == ['c']


def test_bayesian_fits_its_gaussian_process_on_the_warm_trials(tmp_path):
  oracle = keras_tuner.oracles.BayesianOptimizationOracle(
    objective=OBJECTIVE, max_trials=3, hyperparameters=toy_space(), seed=1, num_initial_points=3
  )
  fitted = []
  real_fit = oracle.gpr.fit

  def fit(x, y):
    fitted.append(len(x))
    return real_fit(x, y)

  oracle.gpr.fit = fit
  tuner, _ = _search(tmp_path, oracle, _payload(POINTS))
  # 4 warm trials reach its 3 random ones: the first own trial already comes from the GP.
  assert fitted[0] == 4 and fitted == [4, 5, 6]
  _check_own_trials_only(tuner, 3)
  assert not any(warm_trials.is_warm(t) for t in tuner.oracle.trials.values())


def test_a_resumed_search_keeps_its_warm_trials_once(tmp_path):
  first = _oracle(tmp_path, toy_space(), max_trials=5)
  tuner, _ = _search(tmp_path, first, _payload(POINTS), max_trials=2)  # Stopped after 2.
  project = os.path.join(tmp_path, 'search')
  assert len(warm_trials.held(project)) == 4

  again = _oracle(tmp_path, toy_space(), max_trials=5)
  resumed, lines = _search(tmp_path, again, _payload(POINTS[:1]))
  assert lines == ['tuning: warm start: the resumed search keeps its 4 warm trials']
  assert sorted(again.warm_trials) == [f'warm_{i:02d}' for i in range(4)]
  told = again.study.get_trials(states=(TrialState.COMPLETE,))
  assert sum(t.value == 10.0 for t in told) == 4 and len(told) == 4 + 5
  _check_own_trials_only(resumed, 5)
  # Resumed without the flag, it still learns from them.
  third = _oracle(tmp_path, toy_space(), max_trials=5)
  ToyTuner(oracle=third, directory=str(tmp_path), project_name='search')
  assert warm_trials.feed(third, None) == 4 and len(third.study.trials) == 9
  # The report shows them apart, WARM, and never as the best.
  rows = report.load_trials(project)
  assert [r['status'] for r in rows] == ['COMPLETED'] * 5 + [report.WARM] * 4
  assert report.best_score({'rows': rows}) < 10.0
  assert '*' not in ''.join(line for line in report.table(rows).splitlines() if 'WARM' in line)


def _earlier_search(root, points, status='COMPLETED', space=SPACE):
  """An earlier search under pipeline root `root`: trials at `points` (values), scored 0.5."""
  base = tuning_state.base_dir(str(root), 'flower-tuner')
  folder = tuning_state.prepare(base, {'space': 'earlier'}, echo=lambda line: None)
  hps = _space(space)
  for i, values in enumerate(points):
    trial = keras_tuner.engine.trial.Trial(hps.copy(), trial_id=f'{i:02d}', status=status)
    trial.hyperparameters.values = dict(values)
    trial.score = 0.5 if status == 'COMPLETED' else None
    os.makedirs(os.path.join(folder, 'search', f'trial_{i:02d}'))
    trial.save(os.path.join(folder, 'search', f'trial_{i:02d}', 'trial.json'))
  return folder


def _config(tmp_path, warm_start, tuner='tpe', space=SPACE):
  path = tmp_path / 'space.yaml'
  path.write_text(space)
  module = ModuleConfig(tuner=tuner, warm_start=str(warm_start), search_space=str(path))
  return PipelineConfig(pipeline_root=str(tmp_path / 'new_root'), module=module)


def test_the_runner_passes_the_trials_that_fit_and_says_how_many(tmp_path):
  points = [EARLIER, {**EARLIER, 'rate': 0.1}, {**EARLIER, 'units': 24}, {**EARLIER, 'rate': 0.05}]
  folder = _earlier_search(tmp_path / 'old_root', points)
  for path in (tmp_path / 'old_root', folder):  # A pipeline root: its latest search.
    transfer = warm_search.load(_config(tmp_path, path))
    assert transfer.line == (
      f'warm start: 2 of 4 trials from {folder} (2 outside the new space: rate 0.1 > max 0.01; '
      'rate 0.05 > max 0.01)'
    )
    assert [t['trial_id'] for t in transfer.payload['trials']] == ['00', '02']
    assert transfer.payload['trials'][1] == {'trial_id': '02', 'values': points[2], 'score': 0.5}


@pytest.mark.parametrize(
  'make, message',
  [
    (lambda tmp: tmp / 'none', '{path}: no such folder; name a search folder'),
    (lambda tmp: tmp, '{path}: holds no search (no keras-tuner trials); name a search folder'),
    (
      lambda tmp: _earlier_search(tmp / 'old', [EARLIER], status='FAILED'),
      '{path}: its search {path} has no completed trial to learn from; name a search that',
    ),
    (
      lambda tmp: _earlier_search(tmp / 'old', [{**EARLIER, 'units': 80}] * 2),
      '{path}: none of the 2 completed trials of {path} fits the search space (units 80 > max '
      '64); widen --search-space to take them, or leave --warm-start out.',
    ),
  ],
)
def test_each_unusable_warm_start_is_one_line(tmp_path, make, message):
  path = make(tmp_path)
  with pytest.raises(warm_search.WarmStartError) as raised:
    warm_search.load(_config(tmp_path, path))
  text = str(raised.value)
  assert text.startswith('--warm-start ' + message.format(path=path)) and '\n' not in text


@pytest.mark.parametrize('tuner', ['hyperband', 'random'])
def test_only_tuners_with_a_model_take_a_warm_start(tuner):
  with pytest.raises(ValueError, match=r'^--warm-start works with --tuner bayesian or tpe: '):
    ModuleConfig(tuner=tuner, warm_start='/old')


# Two points (the rest fixed at the built-in defaults): a 2-trial search tries both.
