"""Runs the pipeline locally: LocalDagRunner, Beam DirectRunner, SQLite ML Metadata.

`run` is a local run from a checked configuration to its summary, by phase:
the checks (preflight.py), the data check and the inputs it settles, the
components, and what they produced (summary.py). run_local.py's commands are
in cli.py; tests and the benchmark call `run` directly.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Optional

import absl.logging

from tfx_pipeline.config import PROJECT_ROOT, PipelineConfig
from tfx_pipeline.local import interrupt as interrupt_module
from tfx_pipeline.local import preflight, run_lock
from tfx_pipeline.local import summary as run_summary

_BEAM_LINES = {
  'one': 'one worker in this process',
  'threads': 'a worker thread per core',
  'processes': 'a worker process per core',
}


def echo(line: str) -> None:
  """Prints one console line of a run outside run_local.py's console."""
  print(line, flush=True)  # Progress must show up at once, even through a pipe.


def run(
  config: PipelineConfig,
  echo=echo,
  *,
  run_id: Optional[str] = None,
  checked: Optional[preflight.Checked] = None,
  interrupt: Optional[interrupt_module.Interrupt] = None,
  stop_after: Optional[str] = None,
) -> run_summary.RunSummary:
  """Runs the pipeline, prints progress and a summary, and returns the summary.

  It holds the pipeline root for its duration (run_lock: a second run there
  fails at once). `run_id` names the run (default: now); `checked` is what
  `preflight.check` returned, if the caller has checked already; `interrupt`
  is the Ctrl-C handling of run_local.py, which the component progress
  consults. `stop_after` names a component to end the run with (the benchmark
  times the Tuner alone so); the summary then says only what ran.
  """
  checked = checked or preflight.check(config)  # Each fails in one line, before anything runs.
  echo(checked.search_line)
  if checked.warm_line:
    echo(checked.warm_line)
  with run_lock.hold(config.pipeline_root):
    run_id = run_id or new_run_id()
    config, layout = _settle_inputs(config, checked.layout, echo)
    seconds = _run_components(build(config, layout), run_id, echo, interrupt, stop_after)
    summary = dataclasses.replace(run_summary.read(config, run_id), seconds=seconds)
    if not stop_after:
      return run_summary.finish(config, summary, echo)
    echo(f'stopped after {stop_after} in {seconds:.0f}s')
    if config.tune:
      run_summary.report_tuning(config)
    return summary


def new_run_id() -> str:
  """`20250614-120305-481`: when the run started; names its log and its ML Metadata context."""
  now = time.time()
  return time.strftime('%Y%m%d-%H%M%S', time.localtime(now)) + f'-{int(now * 1000) % 1000:03d}'


def build(config: PipelineConfig, layout=None):
  """The pipeline for `config`, with a SQLite ML Metadata store under the pipeline root.

  `layout` is the data folder's already resolved split layout, if any.
  """
  from tfx.orchestration import metadata

  from tfx_pipeline.local import beam
  from tfx_pipeline.pipeline import create_pipeline

  pipeline = create_pipeline(
    config,
    layout=layout,
    metadata_connection_config=metadata.sqlite_metadata_connection_config(config.metadata_path),
  )
  beam.keep_on_one_worker(pipeline)
  return pipeline


class ComponentError(RuntimeError):
  """A component of the run failed; `component` names it, the cause is chained."""

  def __init__(self, component: str, cause: BaseException):
    super().__init__(f'{component} failed: {type(cause).__name__}: {cause}')
    self.component = component


def _settle_inputs(config: PipelineConfig, layout, echo):
  """The data check and what follows from it: the config and layout the pipeline is built from.

  Prints the data, backbone, data check, Beam and search lines.
  """
  from tfx_pipeline import hparams_file
  from tfx_pipeline.data_folder import check as data_check
  from tfx_pipeline.local import beam

  echo(f'data: {layout.description}')
  _check_backbone(config.module, echo)
  beam_args, size = config.beam_pipeline_args, beam.data_bytes(config.data_root)
  mode = beam.workers_mode(config.beam_workers, size)
  # Reads every record first, so bad data fails here in one line; under
  # --bad-images skip the pipeline reads a copy without the bad records.
  checked = data_check.check(
    config.data_root,
    layout,
    config.pipeline_root,
    config.bad_images,
    beam_args or _beam_args(mode),
    echo,
  )
  if not beam_args:
    echo(f'beam: {_BEAM_LINES[mode]} ({size / 2**20:.1f} MB of data)')
    beam_args = _beam_args(mode)
  # A cleaned copy: its layout is resolved afresh when the pipeline is built.
  layout = layout if checked.data_root == config.data_root else None
  # The Trainer reads the only file in the artifact's folder: import a copy that is alone.
  hparams_from = config.hparams_from and hparams_file.stage(
    config.hparams_from, config.pipeline_root
  )
  config = dataclasses.replace(
    config, data_root=checked.data_root, beam_pipeline_args=beam_args, hparams_from=hparams_from
  )
  if config.tune:
    echo(_search_line(config))
  return config, layout


def _search_line(config: PipelineConfig) -> str:
  from modules import tuner as tuner_module

  m = config.module
  return (
    f'search: {m.tuner}, {tuner_module.trial_count(m)} trials{_fewer_points(m)}, '
    f'at most {tuner_module.epoch_count(m)} epochs in all'
    + (f', {config.parallel_trials} at a time' if config.parallel_trials > 1 else '')
    + (f', {m.prune} pruning after {m.prune_warmup} completed trials' if m.prune else '')
    + f'; an epoch: {_epoch(m)}'
    + ('; each trial trains the head alone first (--fine-tune)' if m.fine_tune else '')
    + (f'; scored on {m.objectives} (single thread, batch 1)' if ',' in m.objectives else '')
  )


def _fewer_points(module) -> str:
  """A random or TPE search asking more trials than its space has points: it stops short.

  Both end once they draw no untried point (modules/tuning/optuna_oracle.py
  falls back on keras-tuner's random draw for that). keras-tuner's Bayesian
  oracle draws at random only at first; its Gaussian process may repeat points.
  """
  from modules.search import search_space

  if module.tuner not in ('random', 'tpe'):
    return ''
  points = search_space.for_module(module)[0].points()
  if points is None or points >= module.max_trials:
    return ''
  return f' (the space has at most {points} points: the search ends when it draws no new one)'


def _epoch(module) -> str:
  from modules.training.training_data import MIN_STEPS_PER_EPOCH

  if module.steps_per_epoch:
    return f'{module.steps_per_epoch} steps'
  return f'a pass over the train split, at least {MIN_STEPS_PER_EPOCH} steps'


def _run_components(pipeline, run_id: str, echo, interrupt, stop_after) -> float:
  """Runs the pipeline's components with their progress lines; the seconds they took."""
  from tfx.orchestration import pipeline as tfx_pipeline

  from tfx_pipeline.local.progress import ComponentProgress

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
    if progress.current and not isinstance(e, preflight.usage_errors()):
      raise ComponentError(progress.current, e) from e
    raise
  finally:
    absl_logger.removeHandler(progress)
    progress.close()
  return time.monotonic() - start


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


def _beam_args(mode: str) -> tuple:
  """Beam options for `mode`, after setting up the environment its workers need."""
  from tfx_pipeline.local import beam

  return beam.prepare(mode, PROJECT_ROOT)


def _check_backbone(module, echo) -> None:
  """Loads the backbone once before any component (converting the built-in one the first time)."""
  from modules.backbones import backbone
  from tfx_pipeline.backbone_features import views

  state = 'fine-tuned' if module.fine_tune else 'frozen'
  searched = views(module)
  if len(searched) > 1 or searched[0] != (module.backbone, module.image_size):
    dims = {backbone.check(name, size) for name, size in searched}
    echo(
      f'backbone: searched among {_describe_views(searched)}, from images stored at '
      f'{module.image_size} px ({"/".join(map(str, sorted(dims)))} features per image, {state})'
    )
    return
  if module.backbone == backbone.BUILTIN_BACKBONE:
    echo(f'backbone: {module.backbone} (small CNN trained from scratch)')
    return
  dim = backbone.check(module.backbone, module.image_size)
  echo(f'backbone: {module.backbone} ({dim} features per image, {state})')


def _describe_views(views) -> str:
  """'a at 224 px, b at 240 px'; each backbone's sizes as '160/192 px'; 'a, b, each at ...'."""
  sizes = {}
  for name, size in views:
    sizes.setdefault(name, []).append(str(size))
  shown = {name: f'{"/".join(each)} px' for name, each in sizes.items()}
  if len(shown) > 1 and len(set(shown.values())) == 1 and len(views) > len(shown):
    return f'{", ".join(shown)}, each at {next(iter(shown.values()))}'
  return ', '.join(f'{name} at {each}' for name, each in shown.items())
