"""run_local.py's command line: options, and one-line errors before anything runs."""

import pytest

from tfx_pipeline.local import cli


def test_help_documents_every_option(capsys):
  with pytest.raises(SystemExit) as exit_info:
    cli.main(['--help'])
  assert exit_info.value.code == 0
  text = capsys.readouterr().out
  for flag in (
    '--tuner',
    '--data-root',
    '--pipeline-root',
    '--max-trials',
    '--max-epochs',
    '--factor',
    '--train-steps',
    '--epochs',
    '--image-size',
    '--backbone',
    '--fine-tune',
    '--no-tune',
    '--hparams-from',
    '--accuracy-threshold',
    '--max-accuracy-drop',
    '--verbose',
    '--search-space',
    '--hypermodel',
    '--prune',
    '--prune-warmup',
    '--augment-copies',
  ):
    assert flag in text


def test_flags_become_the_configuration(tmp_path):
  args = cli.run_parser().parse_args(
    [
      '--tuner',
      'random',
      '--max-trials',
      '3',
      '--image-size',
      '64',
      '--no-tune',
      '--hparams-from',
      str(tmp_path),
      '--train-steps',
      '20',
      '--pipeline-root',
      str(tmp_path),
    ]
  )
  config = cli.config_from_args(args)
  assert config.module.tuner == 'random' and config.module.max_trials == 3
  assert config.module.image_size == 64 and config.tune is False
  assert config.hparams_from == str(tmp_path) and config.train_steps == 20
  assert config.metadata_path == str(tmp_path / 'metadata.sqlite')


@pytest.mark.parametrize(
  'argv,message',
  [
    (['--factor', '1'], 'error: factor=1: Hyperband needs a factor of 2 or more.'),
    (
      ['--hparams-from', 'x'],
      'error: --hparams-from trains with saved hyperparameters: add --no-tune.',
    ),
    (['--image-size', '8'], 'error: image_size=8: use 32 or more pixels.'),
    (
      ['--no-tune', '--tuner', 'tpe', '--warm-start', 'x'],
      'error: --warm-start starts a search from earlier trials: drop --no-tune.',
    ),
    (
      ['--prune', 'median'],
      'error: --prune median works with --tuner random, bayesian or tpe: Hyperband stops trials '
      'early by its own schedule.',
    ),
    (
      ['--hypermodel', 'examples.flower_builder'],
      'error: --hypermodel examples.flower_builder: expected MODULE:FUNCTION, e.g. '
      'examples.flower_builder:model_builder or path/to/my_module.py:model_builder.',
    ),
  ],
)
def test_bad_options_give_one_line(argv, message, capsys):
  assert cli.main(argv) == 2
  assert capsys.readouterr().err.strip() == message


def test_missing_data_root_fails_before_any_component(tmp_path, capsys):
  assert (
    cli.main(['--data-root', str(tmp_path / 'none'), '--pipeline-root', str(tmp_path / 'root')])
    == 2
  )
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and 'is not a folder' in err[0]
  assert not (tmp_path / 'root').exists()


def test_run_is_the_default_command(tmp_path):
  flags = ['--tuner', 'random', '--pipeline-root', str(tmp_path)]
  assert vars(cli.parser().parse_args(['run', *flags])) == {
    'command': 'run',
    **vars(cli.run_parser().parse_args(flags)),
  }


@pytest.mark.parametrize('module', ['tfx_pipeline.local.cli', 'tfx_pipeline.vertex.runner'])
def test_a_runner_imports_no_tensorflow_before_it_sets_up_logging(module):
  """TensorFlow reads its log level when imported: the runners set it up after parsing flags."""
  import subprocess
  import sys

  from tests.conftest import REPO

  code = (
    f'import importlib, sys; importlib.import_module({module!r}).parser(); '
    "print('tensorflow' in sys.modules)"
  )
  out = subprocess.run(
    [sys.executable, '-c', code], cwd=REPO, capture_output=True, text=True, check=True
  ).stdout
  assert out.strip() == 'False'


def test_predict_without_a_pushed_model(tmp_path, capsys):
  assert cli.main(['predict', 'photo.jpg', '--pipeline-root', str(tmp_path)]) == 2
  assert 'no pushed model in' in capsys.readouterr().err


def _one_error_line(capsys):
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1, err
  return err[0]


@pytest.mark.parametrize(
  'where,why',
  [
    ('/proc/nope', 'cannot create or write this folder'),
    ('file', 'is a file, not a folder'),
    ('file/sub', 'file is a file, not a folder'),
  ],
)
def test_unusable_pipeline_root_is_one_line_before_any_work(where, why, tmp_path, capsys):
  (tmp_path / 'file').write_text('x')
  root = where if where.startswith('/') else str(tmp_path / where)
  assert cli.main(['--pipeline-root', root, '--image-size', '32']) == 2
  line = _one_error_line(capsys)
  assert line.startswith(f'error: --pipeline-root {root}: ') and why in line


def test_pipeline_root_check_leaves_nothing_behind(tmp_path, capsys):
  root = tmp_path / 'new' / 'root'
  assert cli.main(['--pipeline-root', str(root), '--data-root', str(tmp_path / 'none')]) == 2
  assert 'is not a folder' in _one_error_line(capsys)
  assert not (tmp_path / 'new').exists()


@pytest.mark.parametrize(
  'name,text,why',
  [
    ('none', None, 'no such file or folder'),
    ('', None, 'no best_hyperparameters.txt in this folder'),
    ('hp.json', 'units: 64', 'cannot read it as JSON'),
    ('hp.json', '{"units": 64}', 'not keras-tuner hyperparameters'),
  ],
)
def test_unusable_hparams_from_is_one_line_before_any_work(name, text, why, tmp_path, capsys):
  source = tmp_path / 'source'
  source.mkdir()
  path = source / name if name else source
  if text is not None:
    path.write_text(text)
  assert (
    cli.main(['--no-tune', '--hparams-from', str(path), '--pipeline-root', str(tmp_path / 'root')])
    == 2
  )
  line = _one_error_line(capsys)
  assert line.startswith(f'error: --hparams-from {path}: ') and why in line
  assert "pass a Tuner's best_hyperparameters/<id> folder" in line
  assert not (tmp_path / 'root').exists()


@pytest.mark.parametrize(
  'make,why',
  [
    (lambda p: p / 'none', 'no such folder'),
    (lambda p: p, 'no saved_model.pb in it'),
  ],
)
def test_unusable_model_dir_is_one_line(make, why, tmp_path, capsys):
  model_dir = make(tmp_path)
  photo = tmp_path / 'photo.jpg'
  photo.write_bytes(b'x')
  assert cli.main(['predict', str(photo), '--model-dir', str(model_dir)]) == 2
  line = _one_error_line(capsys)
  assert line.startswith(f'error: --model-dir {model_dir}: ') and why in line


def test_missing_photo_is_one_line_before_the_model_loads(tmp_path, capsys):
  (tmp_path / 'saved_model.pb').write_bytes(b'not a model')  # Loading it would fail otherwise.
  photo = tmp_path / 'none.jpg'
  assert cli.main(['predict', str(photo), '--model-dir', str(tmp_path)]) == 2
  assert _one_error_line(capsys) == f'error: {photo}: no such photo or TFRecord file.'


def test_without_flags_the_configuration_is_the_default_one():
  from tfx_pipeline.config import PipelineConfig

  assert cli.config_from_args(cli.run_parser().parse_args([])) == PipelineConfig()


def test_an_option_field_is_a_flag_and_fills_the_field(tmp_path):
  import argparse
  import dataclasses
  from typing import Optional

  from modules.module_config import option
  from tfx_pipeline import options

  @dataclasses.dataclass(frozen=True)
  class Inner:
    size: int = option(3, 'a size (default: %(default)s)')
    checks: bool = option(True, 'skip the checks', flag='--no-checks')

  @dataclasses.dataclass(frozen=True)
  class Outer:
    inner: Inner = dataclasses.field(default_factory=Inner)
    folder: Optional[str] = option(None, 'a {storage} folder', path=True, runners=('local',))
    unflagged: int = 7

  def parse(runner, argv):
    parser = argparse.ArgumentParser()
    options.add_flags(parser, Outer, runner)
    return parser, options.from_args(Outer, parser.parse_args(argv), runner, path=str.upper)

  parser, outer = parse('local', ['--size', '5', '--no-checks', '--folder', 'x'])
  assert outer == Outer(Inner(5, False), 'X', 7)
  assert 'a local folder' in parser.format_help() and '(default: 3)' in parser.format_help()
  parser, outer = parse('vertex', [])
  assert outer == Outer() and '--folder' not in parser.format_help()


def test_a_configuration_becomes_flags_that_parse_back_to_it(tmp_path):
  import dataclasses

  from tfx_pipeline import options
  from tfx_pipeline.config import PipelineConfig

  config = PipelineConfig(
    pipeline_root=str(tmp_path),
    module=dataclasses.replace(PipelineConfig().module, tuner='random', image_size=64),
    tune=False,
    enable_cache=False,
    accuracy_threshold=0.25,
  )
  argv = options.to_flags(config, 'local')
  assert '--no-tune' in argv and '--no-cache' in argv and '--data-root' not in argv
  assert cli.config_from_args(cli.run_parser().parse_args(argv)) == config
  assert options.to_flags(PipelineConfig(), 'local') == []


@pytest.mark.parametrize(
  'flags, size',
  [
    ([], 224),
    (['--backbone', 'efficientnet-lite1'], 240),
    (['--backbone', 'efficientnet-lite2'], 260),
    (['--backbone', 'efficientnet-lite2', '--image-size', '200'], 200),
    (['--backbone', 'cnn'], 224),
  ],
)
def test_each_backbone_sees_its_native_image_size_unless_told(flags, size):
  from tfx_pipeline import options

  config = cli.config_from_args(cli.run_parser().parse_args(flags))
  assert config.module.image_size == size
  assert (
    cli.config_from_args(cli.run_parser().parse_args(options.to_flags(config, 'local'))) == config
  )


def test_max_tflite_drop_out_of_range_is_one_line(capsys):
  assert cli.main(['--max-tflite-drop', '1.5']) == 2
  assert 'error: --max-tflite-drop 1.5: use a value in [0, 1].' in capsys.readouterr().err


def test_a_component_broken_by_a_ctrl_c_ends_as_an_interrupted_run(monkeypatch, tmp_path, capsys):
  """A KeyboardInterrupt raised under a TensorFlow C++ call comes back as pybind11's error."""
  from tfx_pipeline.local import interrupt as interrupt_module

  def stopped_inside_tensorflow(config, session, interrupt):
    interrupt.requested_at = 0.0  # What the SIGINT handler records.
    raise RuntimeError(
      'pybind11::error_already_set: MISMATCH of original and normalized active exception '
      'types: ORIGINAL InvalidArgumentError REPLACED BY KeyboardInterrupt: stop requested'
    )

  monkeypatch.setattr(cli, '_run', stopped_inside_tensorflow)
  rc = cli.main(['--verbose', '--pipeline-root', str(tmp_path / 'root')])
  assert rc == interrupt_module.EXIT_CODE
  out = capsys.readouterr().out.splitlines()
  assert out[-1] == interrupt_module.INTERRUPTED and not any('error:' in line for line in out)
