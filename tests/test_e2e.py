"""End to end on the tiny data: the shared real run's outputs, the cache, and the other tuners."""

import dataclasses
import os

import pytest

from tests.conftest import COMPONENTS, RESOLVER, UPSTREAM
from tests.outputs import check_hyperparameters, check_outputs
from tfx_pipeline.local import predict
from tfx_pipeline.local import runner as local_runner

pytestmark = pytest.mark.pipeline
# What the Tuner reads from: a run that stops after it runs only these before it.
TUNER_INPUTS = ('ImportExampleGen', 'StatisticsGen', 'SchemaGen', 'Transform')
# The built-in model's search space (modules/search_space.yaml).
BUILTIN_HYPERPARAMETERS = {'units', 'dense_activation', 'learning_rate', 'optimizer'}


def _run(config, **kwargs):
  lines = []
  summary = local_runner.run(config, echo=lines.append, **kwargs)
  return summary, lines


def test_first_run_executes_every_component_once(tiny_run, tiny_data, tmp_path):
  summary, lines = tiny_run.summary, tiny_run.done.lines
  assert summary.states == {c: 'executed' for c in (*COMPONENTS, RESOLVER)}
  for component in COMPONENTS:
    assert any(line.startswith('[') and f'] {component} done in' in line for line in lines)
  assert 'search: hyperband, 5 trials, at most 7 epochs in all' in lines
  # TFX's Trainer reads this artifact's only file; anything beside it fails a Trainer.
  assert os.listdir(summary.best_hyperparameters_uri) == ['best_hyperparameters.txt']
  check_hyperparameters(summary, BUILTIN_HYPERPARAMETERS)
  check_outputs(summary, tmp_path, tiny_data)
  assert predict.latest_pushed_model(tiny_run.config.serving_model_dir) == summary.pushed_model


def test_rerun_is_served_from_the_cache(tiny_run):
  summary, lines = _run(tiny_run.config)
  trained = (*UPSTREAM, 'Tuner', 'Trainer')
  assert {c: summary.states[c] for c in trained} == {c: 'cached' for c in trained}
  # The first run's model is the latest blessed one now: the Evaluator's new baseline
  # (itself), so the evaluation runs once more, and blesses it.
  assert {c: summary.states[c] for c in ('Evaluator', 'Pusher')} == {
    'Evaluator': 'executed',
    'Pusher': 'executed',
  }
  assert summary.evaluation.baseline_accuracy == summary.accuracy
  assert summary.pushed_model
  assert any('7 of 10 components from cache' in line for line in lines)


@pytest.mark.parametrize('tuner', ['bayesian', 'random'])
def test_other_tuners_reuse_upstream_and_search_again(tiny_run, tuner):
  """Up to the Tuner: what comes after it does not depend on the search algorithm."""
  config = tiny_run.config
  config = dataclasses.replace(
    config, module=dataclasses.replace(config.module, tuner=tuner, max_epochs=1)
  )
  summary, lines = _run(config, stop_after='Tuner')
  assert {c: summary.states[c] for c in TUNER_INPUTS} == {c: 'cached' for c in TUNER_INPUTS}
  assert summary.states['Tuner'] == 'executed'
  assert not {'Trainer', 'Evaluator', 'Pusher'} & set(summary.states)
  assert f'search: {tuner}, 2 trials, at most 2 epochs in all' in lines
  check_hyperparameters(summary, BUILTIN_HYPERPARAMETERS)
