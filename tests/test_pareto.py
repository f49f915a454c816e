"""--objectives: the front, the choice, Optuna's study, the latency probe, the report, the CLI."""

import os

import keras_tuner
import pytest

from modules.module_config import ModuleConfig
from modules.tuning import multi_objective, pareto, search_progress
from modules.tuning.optuna_oracle import OptunaOracle
from tests import tiny

OBJECTIVES = (pareto.ACCURACY, pareto.LATENCY)
LIMITS_UNSET = {pareto.LATENCY: None, pareto.SIZE: None}
# trial: (val_accuracy, latency_ms, model_mb). On the accuracy/latency front: 0, 1, 3.
TRIALS = {
  '0': (0.90, 9.0, 20.0),
  '1': (0.80, 3.0, 14.0),
  '2': (0.70, 4.0, 4.0),  # Slower and less accurate than 1: dominated (but the smallest).
  '3': (0.60, 1.0, 14.0),
  '4': (0.80, 5.0, 14.0),  # As accurate as 1, slower: dominated.
}


def _points(trials=TRIALS, objectives=OBJECTIVES):
  names = (pareto.ACCURACY, pareto.LATENCY, pareto.SIZE)
  return [pareto.Point(t, dict(zip(names, v[: len(objectives)]))) for t, v in trials.items()]


def test_the_front_keeps_the_trials_no_other_beats_in_every_objective():
  assert [p.trial for p in pareto.front(_points(), OBJECTIVES)] == ['0', '1', '3']
  # With size too, trial 2 (the smallest) is on the front.
  three = OBJECTIVES + (pareto.SIZE,)
  assert [p.trial for p in pareto.front(_points(objectives=three), three)] == ['0', '1', '2', '3']


def test_a_tie_in_accuracy_goes_to_the_faster_trial():
  tied = {'a': (0.8, 5.0, 1.0), 'b': (0.8, 3.0, 1.0)}
  assert pareto.choose(_points(tied), OBJECTIVES, {}).point.trial == 'b'


# latency limit -> (the trial chosen, how many of the front are within it). None: no limit.
@pytest.mark.parametrize(
  'limit, chosen', [(None, ('0', 3)), (5, ('1', 2)), (3, ('1', 2)), (2.9, ('3', 1))]
)
def test_the_choice_is_the_most_accurate_trial_on_the_front_within_the_limits(limit, chosen):
  choice = pareto.choose(_points(), OBJECTIVES, {pareto.LATENCY: limit})
  assert (choice.point.trial, choice.within) == chosen


def test_the_chosen_line_says_which_trial_and_why():
  line = pareto.choose(_points(), OBJECTIVES, {pareto.LATENCY: 5.0}).line()
  why = 'the most accurate of 2 on the front within --max-latency-ms 5'
  assert line == f'chosen: trial 1, val_accuracy 0.8 at 3 ms ({why})'
  assert 'no limits set; 3 on the front' in pareto.choose(_points(), OBJECTIVES, {}).line()


def test_no_trial_within_the_limits_is_one_line_naming_the_fastest_and_the_flag():
  with pytest.raises(pareto.NoTrialFits) as e:
    pareto.choose(_points(), OBJECTIVES, {pareto.LATENCY: 0.5})
  assert str(e.value) == (
    'no trial within --max-latency-ms 0.5: the fastest trial (3) is 1 ms; raise --max-latency-ms'
  )


def _oracle(tmp_path, **kwargs):
  hp = keras_tuner.HyperParameters()
  hp.Float('x', 0.0, 1.0)
  objective = keras_tuner.Objective(pareto.ACCURACY, 'max')
  oracle = OptunaOracle(objective, hyperparameters=hp, max_trials=10, seed=1, **kwargs)
  oracle._set_project_dir(str(tmp_path), 'search')
  oracle.verbose = 0
  return oracle


def _metrics(values, *more):
  return dict(zip(OBJECTIVES + more, values))


def _run(oracle, metrics):
  trial = oracle.create_trial('tuner0')
  oracle.update_trial(trial.trial_id, metrics)
  trial.status = 'COMPLETED'
  oracle.end_trial(trial)
  return trial


def test_the_oracle_tells_optuna_every_objective_and_puts_the_chosen_trial_first(tmp_path):
  oracle = _oracle(tmp_path, objectives=OBJECTIVES, limits={pareto.LATENCY: 5.0})
  assert [d.name for d in oracle.study.directions] == ['MAXIMIZE', 'MINIMIZE']
  ids = [_run(oracle, _metrics(v)).trial_id for v in TRIALS.values()]
  assert [t.values for t in oracle.study.trials] == [[v[0], v[1]] for v in TRIALS.values()]
  # keras-tuner's own ranking would put trial 0 (the most accurate) first.
  assert oracle.get_best_trials(1)[0].trial_id == ids[1]
  assert oracle.choice().point.trial == ids[1]
  assert search_progress._figures(oracle.trials[ids[1]]) == ' latency_ms=3'


def test_the_tuner_writes_the_chosen_trial_or_fails_in_one_line(tmp_path):
  tuner_cls = type('Tuner', (multi_objective.MeasuredTrials, keras_tuner.Tuner), {})

  def tuner_for(limits):
    oracle = _oracle(tmp_path / str(limits), objectives=OBJECTIVES, limits=limits)
    tuner = tuner_cls(oracle, hypermodel=lambda hp: None, directory=str(tmp_path / str(limits)))
    for v in TRIALS.values():
      _run(oracle, _metrics(v))
    return tuner

  tuner = tuner_for({pareto.LATENCY: 2.0})
  chosen = tuner.oracle.trials[tuner.oracle.choice().point.trial]
  assert chosen.score == 0.6  # Trial 3: the one trial within 2 ms, not the most accurate.
  assert tuner.get_best_hyperparameters()[0].values == chosen.hyperparameters.values
  tuner.on_search_end()  # Closes the measuring process, started or not.
  with pytest.raises(pareto.NoTrialFits, match=r'the fastest trial \(\d+\) is 1 ms'):
    tuner_for({pareto.LATENCY: 0.5}).get_best_hyperparameters()


@pytest.mark.parametrize('objectives', ['val_accuracy', 'val_accuracy,latency_ms,model_mb'])
def test_make_tuner_measures_trials_only_with_several_objectives(objectives, tmp_path):
  import keras

  from modules import tuner as tuner_module

  def build(hp):
    hp.Int('units', 4, 8)
    return keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])

  config = tiny.module(tuner='tpe', objectives=objectives)
  tuner = tuner_module.make_tuner(config, build, directory=str(tmp_path))
  several = ',' in objectives
  assert isinstance(tuner, multi_objective.MeasuredTrials) == several
  assert len(tuner.oracle.study.directions) == len(objectives.split(','))
  written = multi_objective.read_choice_file(tuner.oracle._project_dir)
  expected = {'objectives': objectives.split(','), 'limits': LIMITS_UNSET}
  assert written == (expected if several else None)


def test_an_unmeasured_trial_is_failed_in_the_study(tmp_path):
  oracle = _oracle(tmp_path, objectives=OBJECTIVES)
  _run(oracle, {pareto.ACCURACY: 0.5})  # No latency_ms: nothing to tell the front.
  assert [t.state.name for t in oracle.study.trials] == ['FAIL']


def test_one_objective_stays_a_single_objective_study_with_no_front(tmp_path):
  from tfx_pipeline.local import report

  oracle = _oracle(tmp_path)
  _run(oracle, {pareto.ACCURACY: 0.5})
  assert len(oracle.study.directions) == 1 and oracle.study.trials[0].value == 0.5
  assert report.write(str(tmp_path / 'search'), out_dir=str(tmp_path / 'out'))['front'] is None


def test_a_reloaded_oracle_rebuilds_the_multi_objective_study(tmp_path):
  oracle = _oracle(tmp_path, objectives=OBJECTIVES)
  for v in TRIALS.values():
    _run(oracle, _metrics(v))
  oracle.save()
  again = _oracle(tmp_path, objectives=OBJECTIVES)
  again.reload()
  told = sorted(t.values for t in again.study.trials)
  assert told == sorted([list(v[:2]) for v in TRIALS.values()])


def test_figures_join_every_epoch_of_a_history():
  import keras

  history = keras.callbacks.History()
  history.history = {pareto.ACCURACY: [0.5, 0.7]}
  out = multi_objective.with_figures(history, {pareto.LATENCY: 3.0})
  assert out.history[pareto.LATENCY] == [3.0, 3.0]
  assert multi_objective.with_figures({'a': 1}, {'b': 2.0}) == {'a': 1, 'b': 2.0}


def test_the_probe_times_a_tiny_served_model_on_one_thread():
  from modules.model import latency_probe
  from modules.search import search_space

  config = ModuleConfig(backbone='cnn', image_size=32)
  hp = search_space.for_module(config)[0].hyperparameters()
  probe = latency_probe.Probe()
  try:
    first = probe.measure(hp.get_config(), config.to_custom_config(), 5)
    hp.values['units'] = max(hp.values['units'] * 4, 512)
    wider = probe.measure(hp.get_config(), config.to_custom_config(), 5)
  finally:
    probe.close()
  assert first['threads'] == 1
  assert 0.0 < first['latency_ms'] < 1000.0
  assert first['latency_ms'] == pytest.approx(first['backbone_ms'] + first['head_ms'])
  # The backbone is timed once; a wider head holds more weights.
  assert wider['backbone_ms'] == first['backbone_ms']
  assert 0.0 < first['model_mb'] < wider['model_mb'] < 100.0


def test_the_probe_reports_a_bad_request_in_one_line():
  from modules.model import latency_probe

  probe = latency_probe.Probe()
  try:
    with pytest.raises(latency_probe.ProbeError, match='measuring latency failed'):
      probe.measure({}, {}, 5)
  finally:
    probe.close()


@pytest.mark.parametrize(
  'flags, message',
  [
    (['--objectives', 'val_accuracy,latency_ms', '--tuner', 'random'], 'works with --tuner tpe'),
    (['--objectives', 'val_accuracy,speed', '--tuner', 'tpe'], 'choose from val_accuracy'),
    (['--objectives', 'latency_ms,val_accuracy', '--tuner', 'tpe'], 'start with val_accuracy'),
    (['--tuner', 'tpe', '--max-latency-ms', '5'], 'needs latency_ms among the objectives'),
    (['--tuner', 'tpe', '--objectives', 'val_accuracy,model_mb', '--max-model-mb', '0'], '> 0'),
    (['--objectives', 'val_accuracy,model_mb', '--tuner', 'tpe', '--warm-start', '.'], 'one obj'),
  ],
)
def test_each_unusable_setting_is_one_error_line(flags, message, capsys, tmp_path):
  from tfx_pipeline.local import cli

  rc = cli.main(['--data-root', str(tmp_path), '--pipeline-root', str(tmp_path / 'r'), *flags])
  err = capsys.readouterr().err.strip().splitlines()
  assert rc == 2 and len(err) == 1 and err[0].startswith('error: ') and message in err[0]


def _finished_search(tmp_path, limits):
  """A saved multi-objective search of TRIALS, as the Tuner leaves it; its project folder."""
  oracle = _oracle(tmp_path, objectives=OBJECTIVES + (pareto.SIZE,), limits=limits)
  for v in TRIALS.values():
    _run(oracle, _metrics(v, pareto.SIZE))
  oracle.write_choice_file()
  return str(tmp_path / 'search')


def test_the_report_shows_the_front_as_a_table_and_a_png(tmp_path, capsys):
  import matplotlib.image

  from tfx_pipeline.local import report

  project = _finished_search(tmp_path, {pareto.LATENCY: 5.0, pareto.SIZE: 15.0})
  written = report.write(project, out_dir=str(tmp_path / 'out'))
  front = written['front']
  assert front['trials'] == 5
  # With size, trial 2 (the smallest) joins the front; trial 1 is chosen within both limits.
  assert [int(t) for t in front['front']] == [0, 1, 2, 3]
  assert int(front['chosen']) == 1
  assert report.best_score(written) == 0.8  # The chosen trial's, for the summary's optimism line.
  assert front['line'].startswith('chosen: trial ')
  assert 'within --max-latency-ms 5 and --max-model-mb 15' in front['line']
  table_rows = front['table'].splitlines()
  assert table_rows[0].split() == ['trial', *OBJECTIVES, pareto.SIZE]
  assert [r.split()[-3] for r in table_rows[1:]] == ['0.9', '0.8', '0.7', '0.6']
  assert ['*' in r for r in table_rows[1:]] == [False, True, False, False]
  image = matplotlib.image.imread(os.path.join(tmp_path, 'out', 'pareto_front.png'))
  assert image.ndim == 3 and image.shape[0] > 100
  # Trial metrics reach the trial table's rows and the printed report.
  assert written['rows'][0]['figures'] == {pareto.LATENCY: 9.0, pareto.SIZE: 20.0}
  report.print_report(written, print)
  out = capsys.readouterr().out
  assert 'Pareto front: 4 of 5 trials' in out and front['line'] in out


def test_the_report_says_when_no_trial_fits(tmp_path):
  from tfx_pipeline.local import report

  project = _finished_search(tmp_path, {pareto.LATENCY: 0.5})
  front = report.write(project, out_dir=str(tmp_path / 'out'))['front']
  assert front['chosen'] is None
  assert front['line'].startswith('chosen: none (no trial within --max-latency-ms 0.5')
