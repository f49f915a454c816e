"""Runs the pipeline locally: LocalDagRunner, Beam DirectRunner, SQLite ML Metadata.

`python run_local.py [run] [options]` runs the pipeline; `python run_local.py
predict PHOTO ...` classifies photos with the latest pushed model, and
`python run_local.py report PATH` re-renders a search's tuning report.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
import time
import traceback
import warnings
from typing import List, Optional

import absl.logging

from tfx_pipeline import options
from tfx_pipeline.config import DEFAULT_PIPELINE_ROOT, PROJECT_ROOT, PipelineConfig
from tfx_pipeline.local import console, run_lock
from tfx_pipeline.local import interrupt as interrupt_module

COMMANDS = ('run', 'predict', 'report')
_RUN_DESCRIPTION = (
  'Tune, train, evaluate and push the flower classifier locally. This is the default command: '
  '`run_local.py [flags]` is `run_local.py run [flags]`. The others: `run_local.py predict '
  '--help` classifies photos with the pushed model; `run_local.py report --help` re-renders '
  "a search's tuning report."
)


def parser() -> argparse.ArgumentParser:
  """The commands and their flags; `main` adds `run` when no command is named."""
  return _parsers()[0]


def run_parser() -> argparse.ArgumentParser:
  """The `run` command's parser: the pipeline's flags."""
  return _parsers()[1]


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
    description='Classify photos with the latest pushed model: prints class name and probability.',
  )
  predict.add_argument(
    'photos', nargs='+', help='image files, or flower TFRecord files (their first --limit photos)'
  )
  predict.add_argument(
    '--limit', type=int, default=5, help='photos per TFRecord file (default: %(default)s)'
  )
  predict.add_argument('--model-dir', help='a specific exported model folder instead')
  predict.add_argument(
    '--pipeline-root',
    default=DEFAULT_PIPELINE_ROOT,
    help='the run whose latest pushed model to use (default: %(default)s)',
  )

  report = commands.add_parser('report', description='Re-render the tuning report of a search.')
  report.add_argument(
    'path',
    help='a search folder under <pipeline-root>/tuning/<pipeline>/, '
    'or that tuning folder (its latest search)',
  )
  return p, run_command


def config_from_args(args: argparse.Namespace) -> PipelineConfig:
  """The configuration the flags describe; raises ValueError for values that cannot work."""
  config = options.from_args(PipelineConfig, args, 'local', path=os.path.abspath)
  reference = config.module.hypermodel
  if reference and ':' in reference:
    module, _, function = reference.rpartition(':')
    if module.endswith('.py'):  # A file: found from any folder the run is started in.
      module = dataclasses.replace(
        config.module, hypermodel=f'{os.path.abspath(module)}:{function}'
      )
      config = dataclasses.replace(config, module=module)
  return config


# Known-harmless warnings TFX 1.16 prints on every local run.
_NOISE = (
  'ArtifactQuery.property_predicate',
  'payload_format custom property',
  'exclude_splits is not set',
)


def _set_up_logging(verbose: bool) -> None:
  """For predict and report: their lines and warnings only. Call before TF is imported.

  A run sets up its own console and log (tfx_pipeline/local/console.py).
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


def build(config: PipelineConfig, layout=None):
  """The pipeline for `config`, with a SQLite ML Metadata store under the pipeline root.

  `layout` is the data folder's already resolved split layout, if any.
  """
  from tfx import v1 as tfx

  from tfx_pipeline.local import beam
  from tfx_pipeline.pipeline import create_pipeline

  pipeline = create_pipeline(
    config,
    layout=layout,
    metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
      config.metadata_path
    ),
  )
  beam.keep_on_one_worker(pipeline)
  return pipeline


def _echo(line: str) -> None:
  print(line, flush=True)  # Progress must show up at once, even through a pipe.


def new_run_id() -> str:
  """`20250614-120305-481`: when the run started; names its log and its ML Metadata context."""
  now = time.time()
  return time.strftime('%Y%m%d-%H%M%S', time.localtime(now)) + f'-{int(now * 1000) % 1000:03d}'


def _local_dag_runner(run_id: str):
  """TFX's LocalDagRunner, with `run_id` instead of the time it starts as the run id.

  The summary then reads this run's own executions from ML Metadata (the
  `pipeline_run` context named by the id), not whichever run is newest.
  """
  from tfx.dsl.compiler import constants
  from tfx.orchestration.local import local_dag_runner
  from tfx.orchestration.portable import runtime_parameter_utils

  class Runner(local_dag_runner.LocalDagRunner):
    def run_with_ir(self, pipeline, run_options=None):
      # LocalDagRunner then finds no run id parameter left to set.
      runtime_parameter_utils.substitute_runtime_parameter(
        pipeline, {constants.PIPELINE_RUN_ID_PARAMETER_NAME: run_id}
      )
      return super().run_with_ir(pipeline, run_options=run_options)

  return Runner()


def run(
  config: PipelineConfig,
  echo=_echo,
  *,
  run_id: Optional[str] = None,
  layout=None,
  interrupt: Optional[interrupt_module.Interrupt] = None,
  stop_after: Optional[str] = None,
  search_line: Optional[str] = None,
) -> dict:
  """Runs the pipeline, prints progress and a summary, and returns the summary.

  It holds the pipeline root for its duration (run_lock: a second run there
  fails at once). `run_id` names the run (default: now); `layout` is the data
  folder's split layout if already resolved; `interrupt` is the Ctrl-C
  handling of run_local.py, which the component progress consults.
  `stop_after` names a component to end the run with (the benchmark times the
  Tuner alone so); the summary then says only what ran.
  `search_line`: what `check_search` returned, if the caller has checked already.
  """
  from tfx.orchestration import pipeline as tfx_pipeline

  from modules import tuner as tuner_module
  from tfx_pipeline import hparams_file
  from tfx_pipeline.data_folder import check as data_check
  from tfx_pipeline.data_folder import layout as data_layout
  from tfx_pipeline.local import beam
  from tfx_pipeline.local.progress import ComponentProgress

  check_paths(config)  # Each fails in one line, before anything runs.
  echo(search_line or check_search(config.module))
  layout = layout or data_layout.resolve(config.data_root)
  with run_lock.hold(config.pipeline_root):
    run_id = run_id or new_run_id()
    echo(f'data: {layout.description}')
    _check_backbone(config.module, echo)
    # Reads every record first, so bad data fails here in one line; under
    # --bad-images skip the pipeline reads a copy without the bad records.
    checked = data_check.check(
      config.data_root,
      layout,
      config.pipeline_root,
      config.bad_images,
      config.beam_pipeline_args or _beam_args(beam.resolve(config.beam_workers, 0)),
      echo,
    )
    if checked.data_root != config.data_root:
      # A cleaned copy: its layout is resolved afresh when the pipeline is built.
      layout = None
    config = dataclasses.replace(config, data_root=checked.data_root)
    if not config.beam_pipeline_args:
      mode = beam.resolve(config.beam_workers, checked.records)
      echo(f'beam: {_BEAM_LINES[mode]}')
      config = dataclasses.replace(config, beam_pipeline_args=_beam_args(mode))
    if config.hparams_from:
      # The Trainer reads the only file in the artifact's folder: import a copy that is alone.
      config = dataclasses.replace(
        config, hparams_from=hparams_file.stage(config.hparams_from, config.pipeline_root)
      )
    if config.tune:
      m = config.module
      echo(
        f'search: {m.tuner}, {tuner_module.trial_count(m)} trials, '
        f'at most {tuner_module.epoch_count(m)} epochs in all'
        + (f', {config.parallel_trials} at a time' if config.parallel_trials > 1 else '')
        + (f', {m.prune} pruning after {m.prune_warmup} completed trials' if m.prune else '')
      )
    pipeline = build(config, layout)
    progress = ComponentProgress(total=len(pipeline.components), echo=echo, interrupt=interrupt)
    # The progress handler reads TFX's INFO records. Set through absl, not the
    # logger: TF's SavedModel writer saves and restores absl's verbosity flag.
    absl.logging.set_verbosity(absl.logging.INFO)
    absl_logger = logging.getLogger('absl')
    absl_logger.addHandler(progress)
    start = time.monotonic()
    try:
      _local_dag_runner(run_id).run(
        pipeline,
        run_options=tfx_pipeline.RunOptions(to_nodes=[stop_after]) if stop_after else None,
      )
    except Exception as e:
      # A --hypermodel that fails its first build is the user's one-line error, as before a run.
      if progress.current and not isinstance(e, _usage_errors()):
        raise ComponentError(progress.current, e) from e
      raise
    finally:
      absl_logger.removeHandler(progress)
      progress.close()
    summary = summarize(config, run_id)
    summary['seconds'] = time.monotonic() - start
    if stop_after:
      echo(f'stopped after {stop_after} in {summary["seconds"]:.0f}s')
      if config.tune:
        _report_tuning(config)
      return summary
    report = _report_tuning(config) if config.tune else None
    summary['confusion_matrix'] = _confusion_matrix(config, run_id, summary, report)
    _print_summary(summary, echo)
    if report:
      from tfx_pipeline.local import report as tuning_report

      tuning_report.print_report(report, echo)
    return summary


class ComponentError(RuntimeError):
  """A component of the run failed; `component` names it, the cause is chained."""

  def __init__(self, component: str, cause: BaseException):
    super().__init__(f'{component} failed: {type(cause).__name__}: {cause}')
    self.component = component


def _beam_args(mode: str) -> tuple:
  """Beam options for `mode`, after setting up the environment its workers need."""
  from tfx_pipeline.local import beam

  return beam.prepare(mode, PROJECT_ROOT)


_BEAM_LINES = {
  'one': 'one worker in this process',
  'threads': 'a worker thread per core',
  'processes': 'a worker process per core',
}


def _check_backbone(module, echo) -> None:
  """Loads the backbone once before any component (converting the built-in one the first time)."""
  from modules import backbone

  if module.backbone == backbone.BUILTIN_BACKBONE:
    echo(f'backbone: {module.backbone} (small CNN trained from scratch)')
    return
  dim = backbone.check(module.backbone, module.image_size)
  echo(
    f'backbone: {module.backbone} ({dim} features per image, '
    f'{"fine-tuned" if module.fine_tune else "frozen"})'
  )


def check_search(module) -> str:
  """Loads the --hypermodel and checks the search space against the model, before any component.

  Returns the console line that says what is searched; raises SearchSpaceError
  or HypermodelError, each one line.
  """
  from modules import hypermodel, search_space

  if module.hypermodel:
    hypermodel.load_builder(module.hypermodel)
  space, fixed = search_space.for_module(module)
  hypermodel.check_space(space, module)
  if space.spec:
    what = f'{space.source}: {space.describe()}'
  else:
    what = f'the hyperparameters {module.hypermodel} declares'
  if fixed:
    what += f' ({", ".join(fixed)} fixed at the built-in defaults)'
  return f'search space: {what}'


def check_paths(config: PipelineConfig) -> None:
  """Raises cli_paths.PathError for a pipeline root or --hparams-from that cannot be used."""
  from tfx_pipeline import cli_paths, hparams_file

  if config.hparams_from:
    hparams_file.find(config.hparams_from)
  cli_paths.writable_folder('--pipeline-root', config.pipeline_root)


def summarize(config: PipelineConfig, run_id: Optional[str] = None) -> dict:
  """What run `run_id` (default: the newest) of `config`'s pipeline produced, from ML Metadata."""
  import keras_tuner

  from modules import search_space
  from tfx_pipeline.local import evaluation, results

  if run_id:
    run = results.run_results(config.metadata_path, config.pipeline_name, run_id)
  else:
    run = results.latest_run(config.metadata_path, config.pipeline_name)
  summary = {'states': {node: r.state for node, r in run.items()}, 'run_id': run_id}
  hp_uri = results.output_uri(run, 'Tuner', 'best_hyperparameters') or results.output_uri(
    run, 'hparams_importer', 'result'
  )
  if hp_uri:
    hp = keras_tuner.HyperParameters.from_config(results.best_hyperparameters(hp_uri))
    summary['best_hyperparameters'] = search_space.public_values(hp.values)
    summary['best_hyperparameters_uri'] = hp_uri
  evaluation_uri = results.output_uri(run, 'Evaluator', 'evaluation')
  summary['evaluation'] = (
    evaluation.read(evaluation_uri, config.max_accuracy_drop) if evaluation_uri else None
  )
  summary['accuracy'] = summary['evaluation'].accuracy if summary['evaluation'] else None
  summary['transform_graph_uri'] = results.output_uri(run, 'Transform', 'transform_graph')
  summary['pushed_model'] = results.pushed_destination(run)
  return summary


def _print_summary(summary: dict, echo) -> None:
  from tfx_pipeline.local import evaluation

  cached = sorted(n for n, s in summary['states'].items() if s == 'cached')
  echo(
    f'finished in {summary["seconds"]:.0f}s'
    + (f' ({len(cached)} of {len(summary["states"])} components from cache)' if cached else '')
  )
  if 'best_hyperparameters' in summary:
    echo(f'best hyperparameters: {summary["best_hyperparameters"]}')
    echo(f'  ({summary["best_hyperparameters_uri"]}/best_hyperparameters.txt)')
  else:
    echo('hyperparameters: search space defaults (no tuning)')
  if summary['evaluation']:
    for line in evaluation.summary_lines(summary['evaluation']):
      echo(line)
  echo(
    f'pushed model: {summary["pushed_model"]}'
    if summary['pushed_model']
    else evaluation.why_not_pushed(summary['evaluation'])
  )
  if summary.get('confusion_matrix'):
    echo(f'confusion matrix: {summary["confusion_matrix"]}')


def _confusion_matrix(config: PipelineConfig, run_id: str, summary: dict, report) -> Optional[str]:
  """Writes the eval confusion matrix beside the tuning report (or the run's log); its path."""
  from tfx_pipeline.local import evaluation

  if not summary['evaluation'] or not summary['evaluation'].confusion:
    return None
  folder = report['dir'] if report else os.path.join(config.pipeline_root, console.LOGS_DIR)
  name = evaluation.CONFUSION_MATRIX_FILE
  return evaluation.write_confusion_matrix(
    summary['evaluation'],
    _class_names(summary.get('transform_graph_uri')),
    os.path.join(folder, name if report else f'{run_id}-{name}'),
  )


def _class_names(transform_graph_uri: Optional[str]) -> List[str]:
  if not transform_graph_uri:
    return []
  import tensorflow_transform as tft

  from modules import labels

  return labels.class_names(tft.TFTransformOutput(transform_graph_uri))


def _report_tuning(config: PipelineConfig) -> Optional[dict]:
  """Writes the search's report into the search's own folder; returns it (None: no search).

  Not into the Tuner's best_hyperparameters artifact: TFX's Trainer reads that
  folder's only file, and fails on a second one.
  """
  from modules.tuning import state as tuning_state
  from tfx_pipeline.local import report as tuning_report

  search = tuning_state.latest_search(
    tuning_state.base_dir(config.pipeline_root, config.pipeline_name)
  )
  return tuning_report.write(search) if search else None


# Raised before any component runs: the run ends with one `error:` line.
def _usage_errors():
  from modules.backbone import BackboneError
  from modules.hypermodel import HypermodelError
  from modules.search_space import SearchSpaceError
  from tfx_pipeline.cli_paths import PathError
  from tfx_pipeline.data_folder.layout import DataLayoutError

  return (
    DataLayoutError,
    PathError,
    BackboneError,
    SearchSpaceError,
    HypermodelError,
    run_lock.RunLockError,
  )


def _run_command(args: argparse.Namespace) -> int:
  """`run_local.py run`: the run with its console, log, lock and Ctrl-C handling."""
  try:
    config = config_from_args(args)
  except ValueError as e:
    raise options.UsageError(str(e)) from None
  try:
    run_lock.refuse_if_held(config.pipeline_root)  # At once, not after TensorFlow's import.
  except run_lock.RunLockError as e:
    raise options.UsageError(console.shown(str(e))) from None
  session = console.Session(args.verbose).start()  # Before TensorFlow is imported.
  errors, interrupt = (), interrupt_module.Interrupt(on_force_exit=session.write_now)
  try:
    with interrupt:
      from tfx_pipeline.data_folder import layout as data_layout

      errors = _usage_errors()
      check_paths(config)  # Nothing is written under the pipeline root before these pass.
      layout = data_layout.resolve(config.data_root)
      search_line = check_search(config.module)
      with run_lock.hold(config.pipeline_root):
        run_id = new_run_id()
        session.open_log(console.log_path(config.pipeline_root, run_id))
        if session.log_path:
          session.line(f'log: {session.log_path}')
        run(
          config,
          session.line,
          run_id=run_id,
          layout=layout,
          interrupt=interrupt,
          search_line=search_line,
        )
  except KeyboardInterrupt:  # Interrupt.uninstall has marked the run stopped.
    traceback.print_exc()  # Where it stopped, into the log.
    session.line(interrupt_module.INTERRUPTED)
    session.close()
    return interrupt_module.EXIT_CODE
  except errors as e:  # Bad settings or input, found before any component ran.
    log = session.log_path
    session.close()
    raise options.UsageError(console.shown(str(e) + (f'\nlog: {log}' if log else ''))) from None
  except Exception as e:
    if session.verbose:
      raise  # The traceback, as it comes.
    traceback.print_exc()  # Into the log.
    log = session.log_path
    session.close()
    print(console.shown(f'error: {_one_line(e)}'), file=sys.stderr)
    if log:
      print(console.shown(f'log: {log}'), file=sys.stderr)
    return 1
  finally:
    session.close()
  return 0


def _one_line(error: BaseException, limit: int = 300) -> str:
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
    predict.predict(model_dir, args.photos, limit=args.limit)
  except (FileNotFoundError, PathError) as e:
    raise options.UsageError(str(e)) from None


def _report_command(args: argparse.Namespace) -> None:
  from tfx_pipeline.local import report as tuning_report

  try:
    tuning_report.print_report(tuning_report.write(os.path.abspath(args.path)), _echo)
  except FileNotFoundError as e:
    raise options.UsageError(str(e)) from None


_COMMANDS = {'run': _run_command, 'predict': _predict_command, 'report': _report_command}


def main(argv: Optional[List[str]] = None) -> int:
  argv = sys.argv[1:] if argv is None else list(argv)
  if argv[:1] not in ([c] for c in COMMANDS):
    argv = ['run', *argv]  # `run_local.py [flags]` (and --help) is the run command.
  args = parser().parse_args(argv)
  if args.command != 'run':
    _set_up_logging(False)
  try:
    return _COMMANDS[args.command](args) or 0
  except options.UsageError as e:  # Bad settings or input: one line (and the log), nothing ran.
    print(f'error: {e}', file=sys.stderr)
    return 2
