"""The search-space file: keras-tuner's types from YAML or JSON, conditions, and one-line errors."""

import json
import os

import keras_tuner
import pytest

from modules.module_config import ModuleConfig
from modules.search import search_space
from modules.search.search_space import SearchSpaceError
from tests.conftest import REPO
from tfx_pipeline.local import cli

EXAMPLES = os.path.join(REPO, 'examples')
CONDITIONAL = """
optimizer: {type: choice, values: [sgd, adam], default: adam}
momentum:
  type: float
  min: 0.0
  max: 0.9
  step: 0.45
  default: 0.9
  condition: {parent: optimizer, values: [sgd]}
"""


def _write(tmp_path, text, name='space.yaml'):
  path = tmp_path / name
  path.write_text(text)
  return str(path)


def test_the_builtin_space_is_the_shipped_file_read_like_any_other():
  expected = keras_tuner.HyperParameters()
  expected.Int('units', 64, 256, step=64, default=128)
  expected.Choice('dense_activation', ['relu', 'tanh', 'sigmoid'], default='relu')
  expected.Choice('learning_rate', [1e-2, 1e-3, 1e-4], default=1e-3)
  expected.Choice('optimizer', ['sgd', 'adam'], default='adam')
  space = search_space.load(search_space.DEFAULT_FILE)
  assert space.hyperparameters().get_config() == expected.get_config()
  assert search_space.for_module(ModuleConfig())[0].spec == space.spec


def test_every_type_from_yaml_and_json_alike(tmp_path):
  declarations = {
    'units': {'type': 'int', 'min': 32, 'max': 512, 'step': 2, 'sampling': 'log', 'default': 64},
    'rate': {'type': 'float', 'min': 1e-4, 'max': 1e-2, 'sampling': 'log', 'default': 1e-3},
    'width': {'type': 'float', 'min': 0.0, 'max': 1.0, 'step': 0.5, 'default': 0.5},
    'kind': {'type': 'choice', 'values': ['a', 'b'], 'default': 'b'},
    'size': {'type': 'choice', 'values': [8, 16], 'ordered': True, 'default': 16},
    'flip': {'type': 'boolean', 'default': True},
    'seed': {'type': 'fixed', 'value': 7},
  }
  from_json = search_space.load(_write(tmp_path, json.dumps(declarations), 'space.json'))
  yaml_text = '\n'.join(f'{name}: {json.dumps(d)}' for name, d in declarations.items())
  # YAML as people write it: 1e-4 is a number here (PyYAML alone reads it as text).
  from_yaml = search_space.load(_write(tmp_path, yaml_text.replace('0.0001', '1e-4')))
  assert from_yaml.spec == from_json.spec
  hp = from_json.hyperparameters()
  assert hp.values == {
    'units': 64,
    'rate': 1e-3,
    'width': 0.5,
    'kind': 'b',
    'size': 16,
    'flip': True,
    'seed': 7,
  }
  assert hp._hps['units'][0].sampling == 'log' and hp._hps['units'][0].step == 2


def test_a_conditional_hyperparameter_is_active_only_under_its_parent(tmp_path):
  space = search_space.load(_write(tmp_path, CONDITIONAL))
  hp = space.hyperparameters()
  assert hp.values == {'optimizer': 'adam'}  # momentum inactive under the default
  (momentum,) = hp._hps['momentum']
  assert [(c.name, c.values) for c in momentum.conditions] == [('optimizer', ['sgd'])]
  # keras-tuner's own sampling honours it.
  oracle = keras_tuner.oracles.RandomSearchOracle(
    objective='val_accuracy', max_trials=20, hyperparameters=hp, seed=3
  )
  oracle._set_project_dir(str(tmp_path), 'p')
  for i in range(8):
    values = oracle.populate_space(str(i))['values']
    assert ('momentum' in values) == (values['optimizer'] == 'sgd'), values


@pytest.mark.parametrize(
  'text,message',
  [
    (
      'units: {type: int, min: 64, max: 256, default: 128, stepp: 64}',
      'units: unknown key "stepp"',
    ),
    ('units: {type: integer, min: 1, max: 2, default: 1}', 'units: type "integer" is not one of'),
    ('units: {min: 1, max: 2, default: 1}', 'units: missing type'),
    ('units: {type: int, min: 1, default: 1}', 'units: missing max'),
    ('units: {type: int, min: 64.5, max: 256, default: 128}', 'units: min must be a whole number'),
    ('units: {type: int, min: "64", max: 256, default: 128}', 'units: min must be a whole number'),
    ('flip: {type: boolean, default: maybe}', 'flip: default must be true or false'),
    ('kind: {type: choice, values: [a, 1], default: a}', 'kind: values mix kinds'),
    ('kind: {type: choice, values: a, default: a}', 'kind: values must be a non-empty list'),
    (
      'units: {type: int, min: 256, max: 64, default: 128}',
      'units: min 256 is greater than max 64',
    ),
    ('rate: {type: float, min: 0.5, max: 0.1, default: 0.2}', 'rate: min 0.5 is greater than max'),
    ('units: {type: int, min: 64, max: 256, default: 512}', 'units: default 512 is outside min 64'),
    ('units: {type: int, min: 64, max: 256, step: 64, default: 100}', 'units: default 100 is not'),
    ('kind: {type: choice, values: [a, b], default: c}', 'kind: default "c" is not one of'),
    ('rate: {type: float, min: 0.0, max: 1.0, sampling: log, default: 0.5}', 'needs a min above 0'),
    (
      'm: {type: int, min: 1, max: 2, default: 1, condition: {parent: x, values: [1]}}',
      'not declared',
    ),
    (CONDITIONAL.replace('[sgd]}', '[rmsprop]}'), 'momentum: condition value "rmsprop" is not'),
    (
      'units: {type: int, min: 1, max: 2, default: 1}\nunits: {type: boolean, default: true}',
      'twice',
    ),
    ('units: [1, 2', 'not valid YAML'),
    ('- units', 'expected a mapping of hyperparameter names'),
  ],
)
def test_each_file_error_is_one_line_naming_file_name_and_problem(tmp_path, text, message):
  path = _write(tmp_path, text)
  with pytest.raises(SearchSpaceError) as error:
    search_space.load(path)
  line = str(error.value)
  assert line.startswith(f'--search-space {path}: ') and message in line, line
  assert '\n' not in line


@pytest.mark.parametrize(
  'text,message',
  [
    ('units: {type: int, min: 64, max: 256, default: 128, stepp: 64}', 'units: unknown key'),
    ('units: {type: int, min: 64.5, max: 256, default: 128}', 'units: min must be a whole'),
    ('units: {type: int, min: 256, max: 64, default: 128}', 'units: min 256 is greater than'),
    ('units: {type: int, min: 64, max: 256, default: 512}', 'units: default 512 is outside'),
    # The built-in model reads units etc.; a name it never reads is refused.
    ('unitz: {type: int, min: 64, max: 256, default: 128}', 'unitz: the built-in model does'),
    ('fine_tune_layers: {type: int, min: 1, max: 9, default: 2}', 'only with --fine-tune'),
    ('batch_size: {type: choice, values: [0, 8], default: 8}', 'batch_size: 0 cannot be used'),
    ('optimizer: {type: fixed, value: rmsprop}', 'optimizer: "rmsprop" cannot be used'),
    ('units: {type: int, min: 64, max: 256, default: 64}\nrate: {type: fixed, value: 1}', 'rate:'),
  ],
)
def test_run_local_stops_on_a_bad_file_in_one_line_before_anything_runs(
  tmp_path, capsys, text, message
):
  path = _write(tmp_path, text)
  root = tmp_path / 'root'
  argv = ['--search-space', path, '--pipeline-root', str(root), '--image-size', '32']
  assert cli.main(argv) == 2
  captured = capsys.readouterr()
  (line,) = captured.err.strip().splitlines()
  assert line.startswith(f'error: --search-space {path}: ') and message in line, line
  assert '[1/' not in captured.out and not root.exists()  # No component ran.


def test_a_file_for_the_builtin_model_gets_what_it_leaves_out_at_the_defaults(tmp_path):
  path = _write(tmp_path, 'learning_rate: {type: choice, values: [1.0e-2, 1.0e-3], default: 1e-2}')
  space, fixed = search_space.for_module(ModuleConfig(search_space=path))
  assert fixed == ['units', 'dense_activation', 'optimizer']
  assert space.hyperparameters().values == {
    'learning_rate': 1e-2,
    'units': 128,
    'dense_activation': 'relu',
    'optimizer': 'adam',
  }


def test_the_examples_check_against_the_builtin_model():
  from modules.model import space_check
  from tfx_pipeline.config import PipelineConfig, sized_for_search

  for name, options in (
    ('image_space.yaml', {}),
    ('fine_tune_space.yaml', {'fine_tune': True}),
    ('family_space.yaml', {}),
    ('size_space.yaml', {}),
  ):
    config = ModuleConfig(search_space=os.path.join(EXAMPLES, name), **options)
    config = sized_for_search(PipelineConfig(module=config)).module  # As the runners do.
    space, _ = search_space.for_module(config)
    space_check.check_space(space, config)  # Every name is read (momentum only under sgd).
  assert config.image_size == 260  # size_space.yaml's largest size.


def test_the_space_keys_the_search_and_the_tuner_cache(tiny_data, tmp_path, fn_args_for):
  """A changed file starts a new search and says so; the same contents resume it."""
  from modules.module_config import RunPaths
  from modules.tuning import state as tuning_state
  from tfx_pipeline.config import PipelineConfig
  from tfx_pipeline.pipeline import create_pipeline

  def custom_configs(path):
    pipeline = create_pipeline(
      PipelineConfig(
        pipeline_root=str(tmp_path / 'root'),
        data_root=tiny_data,
        module=ModuleConfig(search_space=path, tuner='random', max_trials=2),
      )
    )
    nodes = {c.id: c for c in pipeline.components}
    return [json.loads(nodes[n].exec_properties['custom_config']) for n in ('Tuner', 'Trainer')]

  base = str(tmp_path / 'tuning')
  lines = []

  def search_dir(custom_config):
    fn_args = fn_args_for(paths=RunPaths(tuning_dir=base))
    fn_args.custom_config = {**fn_args.custom_config, **custom_config}
    return tuning_state.search_dir(fn_args, echo=lines.append)

  path = _write(tmp_path, CONDITIONAL)
  first, _ = custom_configs(path)
  assert first[search_space.CUSTOM_CONFIG_KEY][1]['condition']['values'] == ['sgd']
  folder = search_dir(first)
  # A comment changes the bytes, not the space: same cache key, same search.
  _write(tmp_path, '# Same space.\n' + CONDITIONAL)
  again, _ = custom_configs(path)
  assert again == first and search_dir(again) == folder
  # Another default: another Tuner and Trainer cache key, and a fresh search that says why.
  _write(tmp_path, CONDITIONAL.replace('default: adam', 'default: sgd'))
  changed, trainer = custom_configs(path)
  assert (
    changed != first
    and trainer[search_space.CUSTOM_CONFIG_KEY] == (changed[search_space.CUSTOM_CONFIG_KEY])
  )
  assert search_dir(changed) != folder
  assert lines[-1].startswith('tuning: search space changed since the last search')


def test_the_readme_example_is_examples_image_space(tmp_path):
  """README.md shows examples/image_space.yaml compactly: the two must declare the same space."""
  with open(os.path.join(REPO, 'README.md')) as f:
    blocks = f.read().split('```yaml\n')[1:]
  (example,) = [b.split('```')[0] for b in blocks if 'augment_zoom' in b]
  shown = search_space.load(_write(tmp_path, example))
  assert shown.spec == search_space.load(os.path.join(EXAMPLES, 'image_space.yaml')).spec


FAMILY_SPACE = (
  'backbone: {type: choice, values: [efficientnet-lite0, efficientnet-lite2], '
  'default: efficientnet-lite0}\n'
)


def test_a_backbone_choice_stores_images_at_the_largest_size_and_each_sees_its_own(tmp_path):
  from modules.model import model

  path = _write(tmp_path, FAMILY_SPACE)
  config = cli.config_from_args(cli.run_parser().parse_args(['--search-space', path]))
  assert config.module.image_size == 260  # Lite2's: the largest of the choices.
  hp = search_space.for_module(config.module)[0].hyperparameters()
  assert model.backbone_view(hp, config.module) == ('efficientnet-lite0', 224)
  hp.values['backbone'] = 'efficientnet-lite2'
  assert model.backbone_view(hp, config.module) == ('efficientnet-lite2', 260)
  told = cli.config_from_args(
    cli.run_parser().parse_args(['--search-space', path, '--image-size', '64'])
  )
  assert told.module.image_size == 64 and model.backbone_view(hp, told.module)[1] == 64


SIZES = 'image_size: {type: choice, values: [160, 192], default: 160}\n'


def test_an_image_size_choice_stores_images_at_the_largest_size_a_trial_sees(tmp_path):
  from modules.model import model, space_check

  def sized(text, *flags):
    args = cli.run_parser().parse_args(['--search-space', _write(tmp_path, text), *flags])
    config = cli.config_from_args(args)
    space = search_space.for_module(config.module)[0]
    space_check.check_space(space, config.module)  # A space the run can use.
    return config.module, space

  # Alone: stored at its largest value; --backbone sees each trial's own.
  module, space = sized('image_size: {type: int, min: 128, max: 224, step: 48, default: 176}')
  assert module.image_size == 224 and search_space.image_sizes(space) == [128, 176, 224]
  hp = space.hyperparameters()
  assert model.backbone_view(hp, module) == ('efficientnet-lite0', 176)
  hp.values['image_size'] = 128
  assert model.backbone_view(hp, module) == ('efficientnet-lite0', 128)
  # With a backbone choice: the largest of the backbones' own sizes and the declared ones.
  module, space = sized(FAMILY_SPACE + SIZES)
  assert module.image_size == 260
  hp = space.hyperparameters()
  hp.values['backbone'] = 'efficientnet-lite2'
  assert model.backbone_view(hp, module) == ('efficientnet-lite2', 160)
  assert sized(FAMILY_SPACE + SIZES.replace('192', '300'))[0].image_size == 300
  # --image-size as given, where it holds every size.
  assert sized(SIZES, '--image-size', '192')[0].image_size == 192


@pytest.mark.parametrize(
  'text, flags, message',
  [
    (
      'backbone: {type: choice, values: [efficientnet-lite0, resnet50], default: resnet50}',
      [],
      'backbone: "resnet50" cannot be used: it must be one of efficientnet-lite0, ',
    ),
    (FAMILY_SPACE, ['--backbone', 'cnn'], 'would not be used: drop --backbone'),
    (
      FAMILY_SPACE,
      ['--hypermodel', 'examples.flower_builder:model_builder'],
      'backbone: examples.flower_builder:model_builder does not read it',
    ),
    (
      SIZES,
      ['--image-size', '176'],
      'image_size: 192 is larger than --image-size 176, the size images are stored at: '
      'pass --image-size 192 or more, or leave --image-size out to store them at the largest',
    ),
    (
      'image_size: {type: choice, values: [16, 64], default: 64}',
      [],
      'image_size: 16 cannot be used: it must be a whole number of pixels, 32 or more.',
    ),
    (
      'image_size: {type: int, min: 160, max: 224, default: 192}',
      [],
      'image_size: give the int range a step (and linear sampling), or list the sizes',
    ),
    (
      SIZES,
      ['--backbone', 'cnn'],
      'image_size: the built-in model reads it only on a SavedModel backbone, not --backbone cnn;',
    ),
    (
      SIZES,
      ['--hypermodel', 'examples.flower_builder:model_builder'],
      'image_size: examples.flower_builder:model_builder does not read it',
    ),
  ],
)
def test_a_backbone_or_image_size_that_cannot_work_is_one_line(
  tmp_path, capsys, text, flags, message
):
  path = _write(tmp_path, text)
  argv = ['--search-space', path, '--pipeline-root', str(tmp_path / 'root'), *flags]
  assert cli.main(argv) == 2
  (line,) = capsys.readouterr().err.strip().splitlines()
  assert line.startswith(f'error: --search-space {path}: ') and message in line, line


def test_a_random_search_asking_more_trials_than_the_space_has_points_says_so(tmp_path):
  """A random or TPE search ends once it draws no untried point: the run says so first."""
  from tests import tiny
  from tfx_pipeline.local import runner

  assert search_space.builtin().points() == 4 * 3 * 3 * 2  # units, activation, rate, optimizer
  counted = _write(
    tmp_path,
    'units: {type: int, min: 1, max: 10, default: 1}\n'
    'learning_rate: {type: float, min: 1.0e-4, max: 1.0e-2, step: 10, sampling: log, '
    'default: 1.0e-3}\n'
    'dropout: {type: float, min: 0.0, max: 0.5, step: 0.25, default: 0.0}\n',
  )
  assert search_space.load(counted).points() == 10 * 3 * 3
  endless = _write(tmp_path, 'dropout: {type: float, min: 0.0, max: 0.5, default: 0.0}\n', 'f.yaml')
  assert search_space.load(endless).points() is None

  def line(**module):
    return runner._search_line(tiny.pipeline(str(tmp_path), tmp_path / 'root', **module))

  assert line(tuner='random', max_trials=100).startswith(
    'search: random, 100 trials (the space has at most 72 points: the search ends when it '
    'draws no new one), at most 200 epochs in all;'
  )
  assert 'points' not in line(tuner='random', max_trials=72)
  assert 'points' not in line(tuner='random', max_trials=100, search_space=endless)
  assert 'points' not in line(tuner='hyperband')
  assert 'points' not in line(tuner='bayesian', max_trials=100)  # It may repeat points.
  # TPE falls back on keras-tuner's random draw once it proposes only tried points.
  assert line(tuner='tpe', max_trials=100).startswith('search: tpe, 100 trials (the space has')
  assert 'points' not in line(tuner='tpe', max_trials=72)
