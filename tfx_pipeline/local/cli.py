"""run_local.py's commands: their flags, the run's console and log, and the one error path.

`python run_local.py [run] [options]` runs the pipeline (runner.py);
`python run_local.py predict PHOTO ...` classifies photos with the latest
pushed model, and `python run_local.py report PATH` re-renders a search's
tuning report. Bad settings or input end a command with one `error:` line and
status 2, before anything runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
import traceback
import warnings
from typing import List, Optional

from modules.module_config import split_reference
from tfx_pipeline import options
from tfx_pipeline.config import DEFAULT_PIPELINE_ROOT, PipelineConfig, sized_for_search
from tfx_pipeline.local import console_log, preflight, run_lock
from tfx_pipeline.local import interrupt as interrupt_module

COMMANDS = ('run', 'predict', 'report')
_RUN_DESCRIPTION = (
  'Tune, train, evaluate and push the flower classifier locally. This is the default command: '
  '`run_local.py [flags]` is `run_local.py run [flags]`. The others: `run_local.py predict '
  '--help` classifies photos with the pushed model; `run_local.py report --help` re-renders '
  "a search's tuning report."
)
# Known-harmless warnings TFX 1.16 prints on every local run.
_NOISE = (
  'ArtifactQuery.property_predicate',
  'payload_format custom property',
  'exclude_splits is not set',
)


def main(argv: Optional[List[str]] = None) -> int:
  argv = sys.argv[1:] if argv is None else list(argv)
  if argv[:1] not in ([c] for c in COMMANDS):
    argv = ['run', *argv]  # `run_local.py [flags]` (and --help) is the run command.
  args = parser().parse_args(argv)
  if args.command != 'run':
    set_up_logging(False)
  try:
    return _COMMANDS[args.command](args) or 0
  except options.UsageError as e:  # Bad settings or input: one line (and the log), nothing ran.
    print(f'error: {e}', file=sys.stderr)
    return 2


def parser() -> argparse.ArgumentParser:
  """The commands and their flags; `main` adds `run` when no command is named."""
  return _parsers()[0]


def run_parser() -> argparse.ArgumentParser:
  """The `run` command's parser: the pipeline's flags."""
  return _parsers()[1]


def config_from_args(args: argparse.Namespace) -> PipelineConfig:
  """The configuration the flags describe; raises ValueError for values that cannot work."""
  config = options.from_args(PipelineConfig, args, 'local', path=os.path.abspath)
  if args.image_size is None:
    config = sized_for_search(config)
  reference = config.module.hypermodel
  if reference and ':' in reference:
    module, function = split_reference(reference)
    if module.endswith('.py'):  # A file: found from any folder the run is started in.
      module = dataclasses.replace(
        config.module, hypermodel=f'{os.path.abspath(module)}:{function}'
      )
      config = dataclasses.replace(config, module=module)
  return config


def set_up_logging(verbose: bool) -> None:
  """For predict and report: their lines and warnings only. Call before TF is imported.

  A run sets up its own console and log (tfx_pipeline/local/console_log.py).
  """
  # 3 hides TF's C++ start-up chatter (CUDA plugin registration on CPU machines).
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '0' if verbose else '3')
  absl_logger = logging.getLogger('absl')
  if verbose:
    logging.basicConfig(level=logging.INFO)
    return
  warnings.filterwarnings('ignore', category=FutureWarning)
  # Keras says this at the end of every one-pass epoch over a finite dataset.
  warnings.filterwarnings('ignore', message='Your input ran out of data')
  absl_logger.propagate = False
  to_stderr = logging.StreamHandler(sys.stderr)
  to_stderr.setLevel(logging.WARNING)
  to_stderr.addFilter(lambda r: not any(n in r.getMessage() for n in _NOISE))
  to_stderr.setFormatter(logging.Formatter('%(levelname)s: %(message)s'))
  absl_logger.addHandler(to_stderr)
  for name in ('apache_beam', 'tensorflow', 'tfx'):
    logging.getLogger(name).setLevel(logging.ERROR)


def _parsers():
  p = argparse.ArgumentParser(
    prog='run_local.py', description='Run the flower tuner pipeline locally, and use what it made.'
  )
  commands = p.add_subparsers(dest='command', required=True, metavar='{run,predict,report}')
  # `run_local.py --help` is the run command's: its description names the others.
  run_command = commands.add_parser('run', description=_RUN_DESCRIPTION)
  options.add_flags(run_command, PipelineConfig, 'local')
  run_command.add_argument(
    '--verbose',
    action='store_true',
    help='show every TFX, Beam, TF, keras-tuner and Keras line on the terminal as it comes '
    '(default: only progress and the summary; the rest goes to <pipeline-root>/logs/<run id>.log)',
  )

  predict = commands.add_parser(
    'predict',
    description='Classify photos with the latest pushed model: prints the class name and its '
    'calibrated probability (the temperature the Trainer fitted on the eval split).',
  )
  predict.add_argument(
    'photos', nargs='+', help='image files, or flower TFRecord files (their first --limit photos)'
  )
  predict.add_argument(
    '--limit', type=int, default=5, help='photos per TFRecord file (default: %(default)s)'
  )
  predict.add_argument('--model-dir', help='a specific exported model folder instead')
  predict.add_argument(
    '--tflite',
    action='store_true',
    help='use the pushed int8 model.tflite, each photo decoded and resized in Python as a '
    'device app would (default: the SavedModel)',
  )
  predict.add_argument(
    '--pipeline-root',
    default=DEFAULT_PIPELINE_ROOT,
    help='the run whose latest pushed model to use (default: %(default)s)',
  )

  report = commands.add_parser('report', description='Re-render the tuning report of a search.')
  report.add_argument(
    'path',
    help='a search folder under <pipeline-root>/tuning/<pipeline>/, '
    'or that tuning folder or the pipeline root (its latest search)',
  )
  return p, run_command


def _run_command(args: argparse.Namespace) -> int:
  """`run_local.py run`: the run with its console, log, lock and Ctrl-C handling."""
  try:
    config = config_from_args(args)
  except ValueError as e:
    raise options.UsageError(str(e)) from None
  try:
    run_lock.refuse_if_held(config.pipeline_root)  # At once, not after TensorFlow's import.
  except run_lock.RunLockError as e:
    raise options.UsageError(console_log.shown(str(e))) from None
  session = console_log.Session(args.verbose).start()  # Before TensorFlow is imported.
  errors, interrupt = (), interrupt_module.Interrupt(on_force_exit=session.write_now)
  try:
    with interrupt:
      errors = preflight.usage_errors()
      _run(config, session, interrupt)
  except KeyboardInterrupt:  # Interrupt.uninstall has marked the run stopped.
    traceback.print_exc()  # Where it stopped, into the log.
    session.line(interrupt_module.INTERRUPTED)
    return interrupt_module.EXIT_CODE
  except errors as e:  # Bad settings or input, found before any component ran.
    log = session.log_path
    session.close()
    raise options.UsageError(console_log.shown(str(e) + (f'\nlog: {log}' if log else ''))) from None
  except Exception as e:
    if interrupt.requested:
      # The stop request broke a component in its own way: a KeyboardInterrupt raised
      # in a Python callback under a TensorFlow C++ call reaches here as pybind11's
      # RuntimeError. The run stopped as asked, and resumes like any interrupted run.
      traceback.print_exc()  # Into the log (onto the terminal with --verbose).
      session.line(interrupt_module.INTERRUPTED)
      return interrupt_module.EXIT_CODE
    if session.verbose:
      raise  # The traceback, as it comes.
    traceback.print_exc()  # Into the log.
    console_log.end_with_error(session, _one_line(e))
    return 1
  finally:
    session.close()
  return 0


def _run(config: PipelineConfig, session: console_log.Session, interrupt) -> None:
  """Checks `config` (nothing is written under the pipeline root before it passes), opens the
  run's log under the root it then holds, and runs."""
  from tfx_pipeline.local import runner

  checked = preflight.check(config)
  with run_lock.hold(config.pipeline_root):
    run_id = runner.new_run_id()
    session.open_log(console_log.log_path(config.pipeline_root, run_id))
    if session.log_path:
      session.line(f'log: {session.log_path}')
    runner.run(config, session.line, run_id=run_id, checked=checked, interrupt=interrupt)


def _one_line(error: BaseException, limit: int = 300) -> str:
  from tfx_pipeline.local.runner import ComponentError

  text = str(error) if isinstance(error, ComponentError) else f'{type(error).__name__}: {error}'
  text = ' '.join(text.split())
  return text if len(text) <= limit else text[: limit - 3] + '...'


def _predict_command(args: argparse.Namespace) -> None:
  from tfx_pipeline.cli_paths import PathError
  from tfx_pipeline.local import predict

  try:
    model_dir = (
      predict.check_model_dir(args.model_dir)
      if args.model_dir
      else predict.latest_pushed_model(
        PipelineConfig(pipeline_root=os.path.abspath(args.pipeline_root)).serving_model_dir
      )
    )
    predict.predict(model_dir, args.photos, limit=args.limit, tflite=args.tflite)
  except (FileNotFoundError, PathError) as e:
    raise options.UsageError(str(e)) from None


def _report_command(args: argparse.Namespace) -> None:
  from tfx_pipeline.local import report as tuning_report
  from tfx_pipeline.local.runner import echo

  try:
    tuning_report.print_report(tuning_report.write(os.path.abspath(args.path)), echo)
  except FileNotFoundError as e:
    raise options.UsageError(str(e)) from None


_COMMANDS = {'run': _run_command, 'predict': _predict_command, 'report': _report_command}
