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
import warnings
from typing import List, Optional

import absl.logging

from tfx_pipeline import options
from tfx_pipeline.config import DEFAULT_PIPELINE_ROOT, PROJECT_ROOT, PipelineConfig

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
    '--verbose', action='store_true', help='show every TFX, Beam and TF log line'
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
  return options.from_args(PipelineConfig, args, 'local', path=os.path.abspath)


# Known-harmless warnings TFX 1.16 prints on every local run.
_NOISE = (
  'ArtifactQuery.property_predicate',
  'payload_format custom property',
  'exclude_splits is not set',
)


def _set_up_logging(verbose: bool) -> None:
  """Progress lines and warnings only, unless `verbose`. Call before TF is imported."""
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


def run(config: PipelineConfig, echo=_echo, stop_after: Optional[str] = None) -> dict:
  """Runs the pipeline, prints progress and a summary, and returns the summary.

  `stop_after` names a component to end the run with (the benchmark times the
  Tuner alone so); the summary then says only what ran.
  """
  from tfx import v1 as tfx
  from tfx.orchestration import pipeline as tfx_pipeline

  from modules import tuner as tuner_module
  from tfx_pipeline import hparams_file
  from tfx_pipeline.data_folder import check as data_check
  from tfx_pipeline.data_folder import layout as data_layout
  from tfx_pipeline.local import beam
  from tfx_pipeline.local.progress import ComponentProgress

  check_paths(config)  # Each fails in one line, before anything runs.
  layout = data_layout.resolve(config.data_root)
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
    )
  pipeline = build(config, layout)
  os.makedirs(config.pipeline_root, exist_ok=True)
  progress = ComponentProgress(total=len(pipeline.components), echo=echo)
  # The progress handler reads TFX's INFO records. Set through absl, not the
  # logger: TF's SavedModel writer saves and restores absl's verbosity flag.
  absl.logging.set_verbosity(absl.logging.INFO)
  absl_logger = logging.getLogger('absl')
  absl_logger.addHandler(progress)
  start = time.monotonic()
  try:
    tfx.orchestration.LocalDagRunner().run(
      pipeline,
      run_options=tfx_pipeline.RunOptions(to_nodes=[stop_after]) if stop_after else None,
    )
  finally:
    absl_logger.removeHandler(progress)
  summary = summarize(config)
  summary['seconds'] = time.monotonic() - start
  if stop_after:
    echo(f'stopped after {stop_after} in {summary["seconds"]:.0f}s')
  else:
    _print_summary(summary, echo)
  if config.tune:
    _report_tuning(config, echo)
  return summary


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


def check_paths(config: PipelineConfig) -> None:
  """Raises cli_paths.PathError for a pipeline root or --hparams-from that cannot be used."""
  from tfx_pipeline import cli_paths, hparams_file

  if config.hparams_from:
    hparams_file.find(config.hparams_from)
  cli_paths.writable_folder('--pipeline-root', config.pipeline_root)


def summarize(config: PipelineConfig) -> dict:
  """What the newest run of `config`'s pipeline produced, read from ML Metadata."""
  import keras_tuner

  from modules import search_space
  from tfx_pipeline.local import results
  from tfx_pipeline.pipeline import ACCURACY_METRIC

  run = results.latest_run(config.metadata_path, config.pipeline_name)
  summary = {'states': {node: r.state for node, r in run.items()}}
  hp_uri = results.output_uri(run, 'Tuner', 'best_hyperparameters') or results.output_uri(
    run, 'hparams_importer', 'result'
  )
  if hp_uri:
    hp = keras_tuner.HyperParameters.from_config(results.best_hyperparameters(hp_uri))
    summary['best_hyperparameters'] = search_space.public_values(hp.values)
    summary['best_hyperparameters_uri'] = hp_uri
  evaluation = results.output_uri(run, 'Evaluator', 'evaluation')
  if evaluation:
    summary['accuracy'] = results.accuracy(evaluation, ACCURACY_METRIC)
  summary['pushed_model'] = results.pushed_destination(run)
  return summary


def _print_summary(summary: dict, echo) -> None:
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
  if summary.get('accuracy') is not None:
    echo(f'eval accuracy: {summary["accuracy"]:.3f}')
  echo(
    f'pushed model: {summary["pushed_model"]}'
    if summary['pushed_model']
    else 'model not pushed: eval accuracy below --accuracy-threshold'
  )


def _report_tuning(config: PipelineConfig, echo) -> None:
  """Prints the search's report, written to the search's own folder.

  Not into the Tuner's best_hyperparameters artifact: TFX's Trainer reads that
  folder's only file, and fails on a second one.
  """
  from modules.tuning import state as tuning_state
  from tfx_pipeline.local import report as tuning_report

  search = tuning_state.latest_search(
    tuning_state.base_dir(config.pipeline_root, config.pipeline_name)
  )
  if not search:
    return
  report = tuning_report.write(search)
  tuning_report.print_report(report, echo)


def _run_command(args: argparse.Namespace) -> None:
  try:
    config = config_from_args(args)
  except ValueError as e:
    raise options.UsageError(str(e)) from None
  from modules.backbone import BackboneError
  from tfx_pipeline.cli_paths import PathError
  from tfx_pipeline.data_folder.layout import DataLayoutError

  try:
    run(config)
  except (DataLayoutError, PathError, BackboneError) as e:  # Raised before any component runs.
    raise options.UsageError(str(e)) from None


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
  _set_up_logging(getattr(args, 'verbose', False))
  try:
    _COMMANDS[args.command](args)
  except options.UsageError as e:  # Bad settings or input: one line, nothing has run.
    print(f'error: {e}', file=sys.stderr)
    return 2
  return 0
