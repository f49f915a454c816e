"""create_pipeline wires the standard TFX components and their channels."""

import pytest

from modules.module_config import ModuleConfig
from tests.conftest import COMPONENTS, RESOLVER
from tfx_pipeline.config import PipelineConfig
from tfx_pipeline.pipeline import create_pipeline


def _build(tiny_data, tmp_path, **kwargs):
  return create_pipeline(
    PipelineConfig(
      pipeline_name='test',
      pipeline_root=str(tmp_path / 'root'),
      data_root=tiny_data,
      module=ModuleConfig(tuner='bayesian'),
      **kwargs,
    )
  )


def _by_id(pipeline):
  return {c.id: c for c in pipeline.components}


def test_components_and_channels(tiny_data, tmp_path):
  pipeline = _build(tiny_data, tmp_path, accuracy_threshold=0.7)
  c = _by_id(pipeline)
  # TFX orders nodes by their inputs: the resolver has none.
  assert list(c) == [COMPONENTS[0], RESOLVER, *COMPONENTS[1:]]
  examples = c['ImportExampleGen'].outputs['examples']
  assert c['StatisticsGen'].inputs['examples'] is examples
  assert c['Transform'].inputs['schema'] is c['SchemaGen'].outputs['schema']
  assert c['Tuner'].inputs['examples'] is c['Transform'].outputs['transformed_examples']
  assert c['Trainer'].inputs['hyperparameters'] is c['Tuner'].outputs['best_hyperparameters']
  assert c['Trainer'].inputs['transform_graph'] is c['Transform'].outputs['transform_graph']
  assert c['Evaluator'].inputs['model'] is c['Trainer'].outputs['model']
  assert c['Evaluator'].inputs['examples'] is examples
  assert c['Evaluator'].inputs['baseline_model'] is c[RESOLVER].outputs['model']
  assert c['Pusher'].inputs['model_blessing'] is c['Evaluator'].outputs['blessing']

  assert (
    c['Transform'].exec_properties['preprocessing_fn'] == 'modules.preprocessing.preprocessing_fn'
  )
  assert c['Tuner'].exec_properties['tuner_fn'] == 'modules.tuner.tuner_fn'
  assert c['Trainer'].exec_properties['run_fn'] == 'modules.trainer.run_fn'
  assert '"tuner": "bayesian"' in c['Tuner'].exec_properties['custom_config']


def test_evaluator_gates_on_the_floor_and_the_latest_blessed_model(tiny_data, tmp_path):
  import json

  c = _by_id(_build(tiny_data, tmp_path, accuracy_threshold=0.7, max_accuracy_drop=0.05))
  assert c[RESOLVER].exec_properties['resolver_class'].__name__ == 'LatestBlessedModelStrategy'
  config = json.loads(c['Evaluator'].exec_properties['eval_config'])
  (accuracy,) = [
    m
    for m in config['metrics_specs'][0]['metrics']
    if m['class_name'] == 'SparseCategoricalAccuracy'
  ]
  # The overall slice only: a weak class alone does not keep a model from being pushed.
  (gate,) = accuracy['per_slice_thresholds']
  assert gate['slicing_specs'] == [{}] and 'threshold' not in accuracy
  assert gate['threshold']['value_threshold'] == {'lower_bound': 0.7}
  change = gate['threshold']['change_threshold']
  assert change['direction'] == 'HIGHER_IS_BETTER'
  assert change['absolute'] == pytest.approx(-0.05)
  assert {m['class_name'] for m in config['metrics_specs'][0]['metrics']} >= {
    'ExampleCount',
    'MultiClassConfusionMatrixPlot',
  }


@pytest.mark.parametrize('drop', [-0.1, 1.5])
def test_max_accuracy_drop_outside_0_1_is_refused(drop):
  with pytest.raises(ValueError, match='--max-accuracy-drop'):
    PipelineConfig(max_accuracy_drop=drop)


def test_without_tuning_the_trainer_has_no_hyperparameters(tiny_data, tmp_path):
  c = _by_id(_build(tiny_data, tmp_path, tune=False))
  assert 'Tuner' not in c
  assert 'hyperparameters' not in c['Trainer'].inputs


def test_hparams_from_imports_an_earlier_result(tiny_data, tmp_path):
  earlier = tmp_path / 'best'
  earlier.mkdir()
  c = _by_id(
    _build(tiny_data, tmp_path, tune=False, hparams_from=str(earlier / 'best_hyperparameters.txt'))
  )
  importer = c['hparams_importer']
  assert importer.exec_properties['artifact_uri'] == str(earlier)
  assert c['Trainer'].inputs['hyperparameters'] is importer.outputs['result']


def test_unusable_data_root_fails_before_building(tmp_path):
  from tfx_pipeline.data_folder.layout import DataLayoutError

  with pytest.raises(DataLayoutError):
    _build(str(tmp_path / 'nothing'), tmp_path)


def test_editing_user_code_changes_the_cache_key(tmp_path):
  import os

  from tfx_pipeline import code_version

  # What preprocessing_fn's graph depends on: its file and what it imports from modules.
  # (module_config.py checks its options with objectives.py: a small file of names and checks,
  # so the Pareto front's own code is not part of Transform's key.)
  assert {os.path.basename(p) for p in code_version.transform_sources()} == {
    'features.py',
    'image_codec.py',
    'module_config.py',
    'objectives.py',
    'preprocessing.py',
  }
  (tmp_path / 'preprocessing.py').write_text(
    'import modules.features\nfrom modules.module_config import ModuleConfig\n'
  )
  for name in ('features.py', 'module_config.py', 'model.py'):
    (tmp_path / name).write_text('x = 1\n')
  transform, training = (
    code_version.transform_code(str(tmp_path)),
    code_version.training_code(str(tmp_path)),
  )
  (tmp_path / 'model.py').write_text('x = 2\n')
  assert code_version.transform_code(str(tmp_path)) == transform  # not a Transform input
  assert code_version.training_code(str(tmp_path)) != training
  (tmp_path / 'module_config.py').write_text('x = 2\n')  # imported by preprocessing.py
  assert code_version.transform_code(str(tmp_path)) != transform
  transform = code_version.transform_code(str(tmp_path))
  (tmp_path / 'preprocessing.py').write_text('x = 2\n')
  assert code_version.transform_code(str(tmp_path)) != transform


def test_components_carry_the_code_fingerprints(tiny_data, tmp_path):
  import json

  from tfx_pipeline import code_version

  c = _by_id(_build(tiny_data, tmp_path))
  assert (
    json.loads(c['Transform'].exec_properties['custom_config'])['code']
    == code_version.transform_code()
  )
  for name in ('Tuner', 'Trainer'):
    assert (
      json.loads(c[name].exec_properties['custom_config'])['code'] == code_version.training_code()
    )


def test_editing_a_file_in_a_sub_package_reruns_the_tuner_and_trainer(
  tiny_data, tmp_path, monkeypatch
):
  import json
  import shutil

  from tfx_pipeline import code_version

  modules = tmp_path / 'modules'
  shutil.copytree(code_version.MODULES_DIR, modules, ignore=shutil.ignore_patterns('__pycache__'))
  monkeypatch.setattr(code_version, 'MODULES_DIR', str(modules))

  def codes():
    c = _by_id(_build(tiny_data, tmp_path))
    return {
      name: json.loads(c[name].exec_properties['custom_config'])['code']
      for name in ('Transform', 'Tuner', 'Trainer')
    }

  before = codes()
  with open(modules / 'tuning' / 'state.py', 'a') as f:
    f.write('# edited\n')
  after = codes()
  assert after['Transform'] == before['Transform']  # Not a Transform input.
  assert after['Tuner'] != before['Tuner'] and after['Trainer'] != before['Trainer']
