"""Runs the pipeline on Vertex AI Pipelines: compiles it to a pipeline JSON, and submits it.

`python run_vertex.py --compile-only ...` writes the JSON with no network and no
credentials; `--submit` also starts a run with google-cloud-aiplatform's
PipelineJob. The pipeline is the local one's `create_pipeline`, with the Tuner
and Trainer as Vertex AI custom jobs and the Beam steps on Dataflow.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import warnings
from typing import List, Optional, Tuple

from tfx_pipeline import cli_paths, options
from tfx_pipeline.config import DEFAULT_PIPELINE_ROOT, PipelineConfig, sized_for_search
from tfx_pipeline.options import UsageError
from tfx_pipeline.vertex import data_splits, image
from tfx_pipeline.vertex.settings import VertexSettings

DEFAULT_OUTPUT = os.path.join(
  DEFAULT_PIPELINE_ROOT, 'vertex', f'{PipelineConfig().pipeline_name}.json'
)
DEFAULT_REHEARSAL_ROOT = os.path.join(DEFAULT_PIPELINE_ROOT, 'rehearsal')
# Flags that choose what this run does, so they are not read from --config.
_COMMAND_LINE_ONLY = ('config', 'compile_only', 'submit', 'rehearse')
_DESCRIPTION = (
  'Compile the flower tuner pipeline for Vertex AI Pipelines and, with --submit, run it there: '
  'Tuner trials in parallel on several machines, the Trainer on a TPU, GPUs or CPU, and the '
  'Beam steps on Dataflow.'
)
# What this run does: (flag, help).
_MODES = (
  ('--compile-only', 'write the pipeline JSON and stop (needs no network or credentials)'),
  ('--submit', 'write the pipeline JSON and start a run of it on Vertex AI'),
  (
    '--rehearse',
    'write the pipeline JSON as for --submit, then run it on this machine task by task '
    "through TFX's Vertex entrypoints, custom jobs as local processes (see the README)",
  ),
)


def parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(prog='run_vertex.py', description=_DESCRIPTION)
  mode = p.add_mutually_exclusive_group(required=True)
  for flag, text in _MODES:
    mode.add_argument(flag, action='store_true', help=text)
  p.add_argument(
    '--config',
    metavar='FILE',
    help="JSON or YAML file of settings keyed by these flags' names "
    '(project, region, num_parallel_trials, ...); flags given here win',
  )
  p.add_argument(
    '--output',
    default=DEFAULT_OUTPUT,
    help='where to write the pipeline JSON (default: %(default)s)',
  )
  p.add_argument(
    '--rehearsal-root',
    default=DEFAULT_REHEARSAL_ROOT,
    help='with --rehearse: the folder gs:// paths map onto (gs://BUCKET/x is '
    "ROOT/gcs/BUCKET/x), with the image's files, the artifact record and the logs "
    '(default: %(default)s)',
  )
  data_splits.add_flags(p)
  options.add_flags(p.add_argument_group('Google Cloud and machines'), VertexSettings, 'vertex')
  options.add_flags(
    p.add_argument_group('search and training (as in run_local.py)'), PipelineConfig, 'vertex'
  )
  p.add_argument('--verbose', action='store_true', help='show every TFX and TensorFlow log line')
  return p


def read_config_file(path: str, known: List[str]) -> dict:
  """Flag defaults from a JSON or YAML file; keys are flag names (- or _)."""
  import yaml  # JSON is YAML too, so one loader reads both.

  try:
    with open(path) as f:
      values = yaml.safe_load(f) or {}
  except (OSError, yaml.YAMLError) as e:
    raise UsageError(f'--config {path}: cannot read it ({e}).') from None
  if not isinstance(values, dict):
    raise UsageError(f'--config {path}: expected a mapping of flag names to values.')
  out = {}
  for key, value in values.items():
    name = str(key).replace('-', '_')
    if name not in known or name in _COMMAND_LINE_ONLY:
      raise UsageError(
        f'--config {path}: unknown setting {key!r}; settings are the flags of '
        'run_vertex.py --help, without --compile-only, --submit and --config.'
      )
    out[name] = value
  return out


def _need_gs(flag: str, value: Optional[str], what: str) -> str:
  if not value:
    raise UsageError(f'{flag} is missing: {what} (a gs://bucket/folder path).')
  if not value.startswith('gs://'):
    raise UsageError(
      f'{flag} {value} is not a gs:// path: Vertex AI reads and writes {what} in Cloud Storage.'
    )
  return value.rstrip('/')


def settings_from_args(args: argparse.Namespace) -> Tuple[PipelineConfig, VertexSettings]:
  """Checks the flags and builds the settings; raises UsageError before anything is compiled."""
  if not args.project:
    raise UsageError('--project is missing: the Google Cloud project to run in.')
  if not args.region:
    raise UsageError('--region is missing: the Vertex AI region to run in, e.g. us-central1.')
  pipeline_root = _need_gs(
    '--pipeline-root', args.pipeline_root, 'the folder for pipeline artifacts'
  )
  if args.rehearse and args.data_root and '://' not in args.data_root:
    data_root = os.path.abspath(args.data_root)  # A local folder: rehearsals only.
  else:
    data_root = _need_gs('--data-root', args.data_root, 'the flower TFRecords')
  hparams_from = args.hparams_from and _need_gs(
    '--hparams-from', args.hparams_from, 'earlier best hyperparameters'
  )
  try:
    vertex = options.from_args(VertexSettings, args, 'vertex')
    config = options.from_args(
      PipelineConfig,
      args,
      'vertex',
      data_root=data_root,
      pipeline_root=pipeline_root,
      hparams_from=hparams_from,
      beam_pipeline_args=vertex.beam_pipeline_args(os.path.join(pipeline_root, 'beam_tmp')),
    )
    if args.image_size is None:
      config = sized_for_search(config)
  except ValueError as e:
    raise UsageError(str(e)) from None
  return config, vertex


def check_search(config: PipelineConfig, dockerfile: Optional[str] = None) -> PipelineConfig:
  """Checks the search space and --hypermodel as run_local.py does, and that the image has it.

  Returns `config` with the --hypermodel reference as the image lays it out.
  Raises UsageError, one line.
  """
  from modules.model import builder, space_check
  from modules.search import search_space

  try:
    reference = config.module.hypermodel
    if reference:
      module = dataclasses.replace(
        config.module, hypermodel=image.hypermodel_in_image(reference, dockerfile)
      )
      config = dataclasses.replace(config, module=module)
    space, _ = search_space.for_module(config.module)
    space_check.check_space(space, config.module)
  except (search_space.SearchSpaceError, builder.HypermodelError) as e:
    raise UsageError(str(e)) from None
  return config


def build(config: PipelineConfig, vertex: VertexSettings, layout=None):
  """The pipeline for Vertex AI: ML Metadata is Vertex's own, so no connection config.

  `layout`: the data's splits (`data_splits.data_layout_for`); the published layout by default.
  """
  from tfx_pipeline.pipeline import create_pipeline

  return create_pipeline(
    config, vertex=vertex, layout=layout or data_splits.data_layout_for(config.data_root)
  )


def compile_pipeline(
  config: PipelineConfig, vertex: VertexSettings, output: str, layout=None
) -> str:
  """Writes the pipeline JSON to `output` and returns its path."""
  from tfx import v1 as tfx

  output = os.path.abspath(output)
  runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
    config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(
      default_image=vertex.container_image
    ),
    output_dir=os.path.dirname(output),
    output_filename=os.path.basename(output),
  )
  runner.run(build(config, vertex, layout))
  return output


def pipeline_job(
  template_path: str, config: PipelineConfig, vertex: VertexSettings, credentials=None
):
  """The Vertex AI PipelineJob for a compiled pipeline; creating it contacts nothing."""
  from google.cloud import aiplatform

  return aiplatform.PipelineJob(
    display_name=config.pipeline_name,
    template_path=template_path,
    pipeline_root=config.pipeline_root,
    project=vertex.project,
    location=vertex.region,
    enable_caching=config.enable_cache,
    credentials=credentials,
  )


def _quiet(verbose: bool) -> None:
  """Only warnings and errors, unless `verbose`. Call before TensorFlow is imported."""
  if verbose:
    return
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
  warnings.filterwarnings('ignore', category=FutureWarning)
  import absl.logging

  absl.logging.set_verbosity(absl.logging.WARNING)


def main(argv: Optional[List[str]] = None) -> int:
  argv = sys.argv[1:] if argv is None else argv
  p = parser()
  args = p.parse_args(argv)
  try:
    if args.config:
      known = [a.dest for a in p._actions]  # pylint: disable=protected-access
      p.set_defaults(**read_config_file(args.config, known))
      args = p.parse_args(argv)
    config, vertex = settings_from_args(args)
    cli_paths.writable_folder('--output', os.path.dirname(os.path.abspath(args.output)))
  except (UsageError, cli_paths.PathError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  if args.rehearse:
    from tfx_pipeline.vertex.rehearsal import rehearse

    def compile_for_rehearsal(layout):
      checked = check_search(config)
      output = compile_pipeline(checked, vertex, args.output, layout)
      return output, vertex.describe(checked.tune)

    return rehearse.main(config, vertex, args, compile_for_rehearsal)
  _quiet(args.verbose)
  try:
    config = check_search(config)  # After _quiet: it loads TensorFlow.
  except UsageError as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  output = compile_pipeline(config, vertex, args.output, data_splits.layout_from_args(config, args))
  print(f'compiled: {output}')
  for line in vertex.describe(config.tune):
    print(line)
  if not args.submit:
    print('submit it with the same flags and --submit instead of --compile-only')
    return 0
  job = pipeline_job(output, config, vertex)
  job.submit(service_account=vertex.service_account)
  print(
    f'submitted: https://console.cloud.google.com/vertex-ai/locations/{vertex.region}'
    f'/pipelines/runs/{job.name}?project={vertex.project}'
  )
  return 0
