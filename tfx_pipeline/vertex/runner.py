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
import types
import warnings
from typing import List, Optional, Tuple

from tfx_pipeline import cli_paths, options
from tfx_pipeline.config import DEFAULT_PIPELINE_ROOT, PROJECT_ROOT, PipelineConfig
from tfx_pipeline.options import UsageError
from tfx_pipeline.vertex.rehearsal.image import copied_folders
from tfx_pipeline.vertex.settings import MachineSpec, VertexSettings

_DEFAULTS = PipelineConfig()
_MACHINE_DEFAULTS = MachineSpec()
# VertexSettings' defaults (project and region have none).
_VERTEX_DEFAULTS = types.SimpleNamespace(
  **{f.name: f.default for f in dataclasses.fields(VertexSettings)}
)
DEFAULT_OUTPUT = os.path.join(DEFAULT_PIPELINE_ROOT, 'vertex', f'{_DEFAULTS.pipeline_name}.json')
# Flags that choose what this run does, so they are not read from --config.
_COMMAND_LINE_ONLY = ('config', 'compile_only', 'submit', 'rehearse')
DEFAULT_REHEARSAL_ROOT = os.path.join(DEFAULT_PIPELINE_ROOT, 'rehearsal')
_DESCRIPTION = (
  'Compile the flower tuner pipeline for Vertex AI Pipelines and, with --submit, run it there: '
  'Tuner trials in parallel on several machines, the Trainer on a TPU, GPUs or CPU, and the '
  'Beam steps on Dataflow.'
)
# Each machine's flags, --ROLE-machine-type, --ROLE-accelerator-type and
# --ROLE-accelerator-count: their help texts by role.
_MACHINES = {
  'tuner': (
    'machine type of each tuning machine (default: %(default)s)',
    'GPU type per tuning machine, e.g. NVIDIA_TESLA_T4 (default: none)',
    'GPUs per tuning machine (default: %(default)s)',
  ),
  'trainer': (
    "Trainer machine type; 'cloud-tpu' for TPU_V2/TPU_V3 (default: %(default)s)",
    'Trainer accelerator: a TPU (TPU_V3, TPU_V5_LITEPOD, ...) or GPUs '
    '(NVIDIA_TESLA_T4, NVIDIA_L4, ...) (default: none, CPU only)',
    'TPU cores (8 for a v3-8) or GPUs of the Trainer (default: %(default)s)',
  ),
}


def parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(prog='run_vertex.py', description=_DESCRIPTION)
  mode = p.add_mutually_exclusive_group(required=True)
  mode.add_argument(
    '--compile-only',
    action='store_true',
    help='write the pipeline JSON and stop (needs no network or credentials)',
  )
  mode.add_argument(
    '--submit',
    action='store_true',
    help='write the pipeline JSON and start a run of it on Vertex AI',
  )
  mode.add_argument(
    '--rehearse',
    action='store_true',
    help='write the pipeline JSON as for --submit, then run it on this machine task by task '
    "through TFX's Vertex entrypoints, custom jobs as local processes (see the README)",
  )
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

  g = p.add_argument_group('Google Cloud')
  g.add_argument('--project', help='Google Cloud project to run in (required)')
  g.add_argument('--region', help='Vertex AI region, e.g. us-central1 (required)')
  g.add_argument('--pipeline-root', help='gs:// folder for artifacts and pushed models (required)')
  g.add_argument(
    '--data-root',
    help='gs:// folder of flower TFRecords (required; with --rehearse, a local folder too)',
  )
  g.add_argument(
    '--split-by-hash',
    action='store_true',
    help='the data folder is not in the published layout '
    '(image_classification_builder-{train,validation}.tfrecord-*): split its '
    '*.tfrecord* files 80/20 into train/eval by hash',
  )
  g.add_argument(
    '--image',
    help='container image every step runs in, built from ./Dockerfile (default: '
    + VertexSettings.image_for('PROJECT', 'REGION')
    + ')',
  )
  g.add_argument(
    '--service-account',
    help='service account the run, its training jobs and Dataflow use '
    "(default: the project's defaults)",
  )

  m = _MACHINE_DEFAULTS
  t = p.add_argument_group('machines')
  t.add_argument(
    '--num-parallel-trials',
    type=int,
    default=_VERTEX_DEFAULTS.num_parallel_trials,
    help='tuning machines, each running trials: a chief (also the keras-tuner '
    'oracle) and N-1 workers (default: %(default)s)',
  )
  for role, (machine_type, accelerator_type, accelerator_count) in _MACHINES.items():
    t.add_argument(f'--{role}-machine-type', default=m.machine_type, help=machine_type)
    t.add_argument(f'--{role}-accelerator-type', help=accelerator_type)
    t.add_argument(f'--{role}-accelerator-count', type=int, default=0, help=accelerator_count)
  t.add_argument(
    '--trainer-tpu-topology',
    help="TPU slice shape for the TPU types that take one, e.g. '2x2' for v5e",
  )
  t.add_argument(
    '--no-dataflow',
    action='store_true',
    help='run the Beam steps inside their pipeline step instead of on Dataflow',
  )
  t.add_argument(
    '--dataflow-machine-type',
    default=_VERTEX_DEFAULTS.dataflow_machine_type,
    help='Dataflow worker machine type (default: %(default)s)',
  )
  t.add_argument(
    '--dataflow-max-workers',
    type=int,
    default=_VERTEX_DEFAULTS.dataflow_max_workers,
    help='most Dataflow workers per Beam step (default: %(default)s)',
  )
  t.add_argument(
    '--beam-arg',
    action='append',
    default=[],
    metavar='ARG',
    help='extra Beam pipeline option, e.g. --beam-arg=--disk_size_gb=50 (repeatable)',
  )

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


def _machine(args: argparse.Namespace, role: str) -> MachineSpec:
  """The machine the --ROLE-* flags describe (only the Trainer's takes a TPU topology)."""
  try:
    return MachineSpec(
      **{
        f.name: getattr(args, f'{role}_{f.name}', f.default)
        for f in dataclasses.fields(MachineSpec)
      }
    )
  except ValueError as e:
    raise UsageError(f'--{role}-*: {e}') from None


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
  tuner_machine, trainer_machine = (_machine(args, role) for role in _MACHINES)
  try:
    vertex = VertexSettings(
      project=args.project,
      region=args.region,
      image=args.image,
      service_account=args.service_account,
      num_parallel_trials=args.num_parallel_trials,
      tuner_machine=tuner_machine,
      trainer_machine=trainer_machine,
      dataflow=not args.no_dataflow,
      dataflow_machine_type=args.dataflow_machine_type,
      dataflow_max_workers=args.dataflow_max_workers,
      extra_beam_args=tuple(args.beam_arg),
    )
    config = options.from_args(
      PipelineConfig,
      args,
      'vertex',
      data_root=data_root,
      pipeline_root=pipeline_root,
      hparams_from=hparams_from,
      beam_pipeline_args=vertex.beam_pipeline_args(os.path.join(pipeline_root, 'beam_tmp')),
    )
  except ValueError as e:
    raise UsageError(str(e)) from None
  return config, vertex


def check_search(config: PipelineConfig, dockerfile: Optional[str] = None) -> PipelineConfig:
  """Checks the search space and --hypermodel as run_local.py does, and that the image has it.

  The jobs run the code in the image, so a --hypermodel module must be in a
  folder of the checkout that ./Dockerfile copies; a file path becomes relative
  to the checkout, as the image lays it out. Raises UsageError, one line.
  """
  from modules.model import builder, space_check
  from modules.search import search_space

  try:
    reference = config.module.hypermodel
    if reference:
      builder.load_builder(reference)
      path = builder.module_file(reference)
      inside = os.path.relpath(path, PROJECT_ROOT)
      if inside.startswith(os.pardir):
        raise UsageError(
          f'--hypermodel {reference}: {path} is outside the checkout, so the image cannot '
          f'hold it: move it into {PROJECT_ROOT} and copy its folder in ./Dockerfile.'
        )
      top = inside.split(os.sep)[0]
      if top not in copied_folders(dockerfile or os.path.join(PROJECT_ROOT, 'Dockerfile')):
        raise UsageError(
          f'--hypermodel {reference}: ./Dockerfile does not copy {top}/ into the image the '
          f'jobs run: add `COPY {top}/ {top}/` (and `!{top}/` to .dockerignore), rebuild '
          'and push it.'
        )
      if builder.is_file_reference(reference):
        function = builder.split_reference(reference)[1]
        module = dataclasses.replace(config.module, hypermodel=f'{inside}:{function}')
        config = dataclasses.replace(config, module=module)
    space, _ = search_space.for_module(config.module)
    space_check.check_space(space, config.module)
  except (search_space.SearchSpaceError, builder.HypermodelError) as e:
    raise UsageError(str(e)) from None
  return config


def data_layout_for(data_root: str, split_by_hash: bool):
  """The splits of a gs:// data folder, declared rather than listed (compiling is offline).

  The same two layouts `data_layout.resolve` finds in a local folder.
  """
  from tfx_pipeline.data_folder import layout as data_layout

  if not split_by_hash:
    return data_layout.published_layout(f'published train and validation shards in {data_root}')
  return data_layout.hash_split_layout(
    data_layout.TFRECORD_PATTERNS[0],
    f'TFRecord files in {data_root}, split 80/20 into train/eval by hash',
  )


def build(config: PipelineConfig, vertex: VertexSettings, split_by_hash: bool = False):
  """The pipeline for Vertex AI: ML Metadata is Vertex's own, so no connection config."""
  from tfx_pipeline.pipeline import create_pipeline

  return create_pipeline(
    config, vertex=vertex, layout=data_layout_for(config.data_root, split_by_hash)
  )


def compile_pipeline(
  config: PipelineConfig, vertex: VertexSettings, output: str, split_by_hash: bool = False
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
  runner.run(build(config, vertex, split_by_hash))
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


def describe(config: PipelineConfig, vertex: VertexSettings) -> List[str]:
  """What a run will start, machine by machine."""
  lines = [f'image: {vertex.container_image}']
  if config.tune:
    n = vertex.num_parallel_trials
    lines.append(
      f'tuner: {n} parallel trials: chief + {n - 1} workers, each {vertex.tuner_machine.describe()}'
    )
  lines.append(f'trainer: {vertex.trainer_machine.describe()}')
  lines.append(
    f'beam: Dataflow, up to {vertex.dataflow_max_workers} x {vertex.dataflow_machine_type} per step'
    if vertex.dataflow
    else 'beam: inside each pipeline step'
  )
  return lines


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

    def compile_for_rehearsal():
      checked = check_search(config)
      output = compile_pipeline(checked, vertex, args.output, args.split_by_hash)
      return output, describe(checked, vertex)

    return rehearse.main(config, vertex, args, compile_for_rehearsal)
  _quiet(args.verbose)
  try:
    config = check_search(config)  # After _quiet: it loads TensorFlow.
  except UsageError as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  output = compile_pipeline(config, vertex, args.output, args.split_by_hash)
  print(f'compiled: {output}')
  for line in describe(config, vertex):
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
