"""Where the pipeline runs on Vertex AI and on which machines: the custom jobs and Beam options.

`run_vertex.py` fills a `VertexSettings` from its flags; `create_pipeline`
reads it to run the Tuner and Trainer as Vertex AI custom jobs, and the Beam
steps on Dataflow.
"""

from __future__ import annotations

import dataclasses
from typing import List, Optional, Tuple

from modules.module_config import option
from tfx_pipeline.vertex import machines

# The modules are written for Keras 3, but some TFX images set
# TF_USE_LEGACY_KERAS=1, which turns tf.keras (and so keras-tuner's view of
# models built with it) into Keras 2.
KERAS_ENV = (('TF_USE_LEGACY_KERAS', '0'),)
# The default image: the Artifact Registry repository the README's build step pushes to.
DEFAULT_IMAGE = '{region}-docker.pkg.dev/{project}/flower-tuner/flower-tuner:latest'


@dataclasses.dataclass(frozen=True)
class MachineSpec:
  """One Vertex AI machine: its type, and GPUs or a TPU (a Vertex `machine_spec`)."""

  # Flags per role (--tuner-..., --trainer-...); {what} reads the role's machine.
  machine_type: str = option(
    'n1-standard-8',
    "machine type of {what}; 'cloud-tpu' for TPU_V2/TPU_V3 (default: %(default)s)",
  )
  # A Vertex AcceleratorType: GPUs (NVIDIA_TESLA_T4, NVIDIA_L4, ...) or a TPU
  # (TPU_V2, TPU_V3, TPU_V5_LITEPOD, ...); None for CPU only.
  accelerator_type: Optional[str] = option(
    None,
    'accelerator of {what}: GPUs (NVIDIA_TESLA_T4, NVIDIA_L4, ...) or a TPU '
    '(TPU_V3, TPU_V5_LITEPOD, ...) (default: none, CPU only)',
  )
  accelerator_count: int = option(
    0, 'GPUs, or TPU cores (8 for a v3-8), of {what} (default: %(default)s)'
  )
  # TPU slice shape for the types that take one, e.g. '2x2' (v5e); None for v2-8 / v3-8.
  tpu_topology: Optional[str] = option(
    None, "TPU slice shape of {what} for the TPU types that take one, e.g. '2x2' for v5e"
  )

  def __post_init__(self):
    kind = self.accelerator_type
    if kind and self.accelerator_count < 1:
      raise ValueError(
        f'accelerator type {kind} needs an accelerator count of 1 or more (8 for a v3-8 TPU).'
      )
    if self.accelerator_count and not kind:
      raise ValueError(f'accelerator count {self.accelerator_count} without an accelerator type.')
    if self.tpu_topology and not self.is_tpu:
      raise ValueError(f'TPU topology {self.tpu_topology} needs a TPU accelerator type (TPU_*).')
    # What Vertex AI accepts: GPU types and counts per machine type, TPU machines and slices.
    machines.check(self.machine_type, kind, self.accelerator_count, self.tpu_topology)

  @property
  def is_tpu(self) -> bool:
    return (self.accelerator_type or '').startswith('TPU_')

  def to_vertex(self) -> dict:
    """The `machine_spec` of a Vertex worker pool."""
    spec = {'machine_type': self.machine_type}
    if self.accelerator_type:
      spec.update(accelerator_type=self.accelerator_type, accelerator_count=self.accelerator_count)
    if self.tpu_topology:
      spec['tpu_topology'] = self.tpu_topology
    return spec

  def describe(self) -> str:
    if not self.accelerator_type:
      return self.machine_type
    topology = f' ({self.tpu_topology})' if self.tpu_topology else ''
    return f'{self.machine_type} + {self.accelerator_count} x {self.accelerator_type}{topology}'


@dataclasses.dataclass(frozen=True)
class VertexSettings:
  """Where the pipeline runs on Vertex AI and on which machines; `create_pipeline` reads it."""

  # Every field is a run_vertex.py flag (tfx_pipeline/options.py); project and
  # region have no default, and run_vertex.py says so when they are missing.
  project: str = option(None, 'Google Cloud project to run in (required)')
  region: str = option(None, 'Vertex AI region, e.g. us-central1 (required)')
  # None: image_for(project, region).
  image: Optional[str] = option(
    None,
    'container image every step runs in, built from ./Dockerfile (default: '
    + DEFAULT_IMAGE.format(region='REGION', project='PROJECT')
    + ')',
  )
  # None: the project's defaults.
  service_account: Optional[str] = option(
    None, "service account the run, its training jobs and Dataflow use (default: the project's)"
  )
  # The Tuner's job: a chief (keras-tuner oracle, plus trials) and num_parallel_trials - 1 workers.
  num_parallel_trials: int = option(
    3,
    'tuning machines, each running trials: a chief (also the keras-tuner oracle) and N-1 '
    'workers (default: %(default)s)',
    metavar='N',
  )
  tuner_machine: MachineSpec = option(MachineSpec(), 'each tuning machine', prefix='tuner')
  trainer_machine: MachineSpec = option(MachineSpec(), 'the Trainer', prefix='trainer')
  # Run the Beam steps (ExampleGen, StatisticsGen, Transform, Evaluator) on
  # Dataflow; False runs them inside their own pipeline step's container.
  dataflow: bool = option(
    True,
    'run the Beam steps inside their pipeline step instead of on Dataflow',
    flag='--no-dataflow',
  )
  dataflow_machine_type: str = option(
    'n1-standard-4', 'Dataflow worker machine type (default: %(default)s)'
  )
  dataflow_max_workers: int = option(
    4, 'most Dataflow workers per Beam step (default: %(default)s)'
  )
  extra_beam_args: Tuple[str, ...] = option(
    (),
    'extra Beam pipeline option, e.g. --beam-arg=--disk_size_gb=50 (repeatable)',
    flag='--beam-arg',
    metavar='ARG',
  )

  def __post_init__(self):
    if not self.project or not self.region:
      raise ValueError('Vertex AI needs a project and a region.')
    if self.num_parallel_trials < 1:
      raise ValueError(f'--num-parallel-trials {self.num_parallel_trials}: must be at least 1.')
    if self.dataflow_max_workers < 1:
      raise ValueError(f'--dataflow-max-workers {self.dataflow_max_workers}: must be at least 1.')

  @staticmethod
  def image_for(project: str, region: str) -> str:
    """The default image: the Artifact Registry repository the README's build step pushes to."""
    return DEFAULT_IMAGE.format(region=region, project=project)

  @property
  def container_image(self) -> str:
    return self.image or self.image_for(self.project, self.region)

  def describe(self, tune: bool = True) -> List[str]:
    """What a run will start, machine by machine (the Tuner's only when it `tune`s)."""
    lines = [f'image: {self.container_image}']
    if tune:
      n = self.num_parallel_trials
      lines.append(
        f'tuner: {n} parallel trials: chief + {n - 1} workers, each {self.tuner_machine.describe()}'
      )
    lines.append(f'trainer: {self.trainer_machine.describe()}')
    lines.append(
      f'beam: Dataflow, up to {self.dataflow_max_workers} x {self.dataflow_machine_type} per step'
      if self.dataflow
      else 'beam: inside each pipeline step'
    )
    return lines

  def _pool(self, machine: MachineSpec, replicas: int) -> dict:
    return {
      'machine_spec': machine.to_vertex(),
      'replica_count': replicas,
      'container_spec': {
        'image_uri': self.container_image,
        'env': [{'name': k, 'value': v} for k, v in KERAS_ENV],
      },
    }

  def _job(self, pools: list) -> dict:
    job_spec = {'worker_pool_specs': pools}
    if self.service_account:
      job_spec['service_account'] = self.service_account
    # TFX's cloud executors take (and remove) 'project'; the rest is a Vertex CustomJob.
    return {'project': self.project, 'job_spec': job_spec}

  def tuner_job(self) -> dict:
    """The Tuner's custom job: pool 0 is the chief, pool 1 the other workers."""
    pools = [self._pool(self.tuner_machine, 1)]
    if self.num_parallel_trials > 1:
      pools.append(self._pool(self.tuner_machine, self.num_parallel_trials - 1))
    return self._job(pools)

  def trainer_job(self) -> dict:
    """The Trainer's custom job: one machine, with the TPU or GPUs asked for."""
    return self._job([self._pool(self.trainer_machine, 1)])

  def beam_pipeline_args(self, temp_location: str) -> Tuple[str, ...]:
    """Beam options for every Beam step; `temp_location` is a gs:// folder."""
    if not self.dataflow:
      return self.extra_beam_args
    args = [
      '--runner=DataflowRunner',
      f'--project={self.project}',
      f'--region={self.region}',
      f'--temp_location={temp_location}',
      f'--machine_type={self.dataflow_machine_type}',
      f'--max_num_workers={self.dataflow_max_workers}',
      # Workers run the steps' own image (TFX's images carry Beam's worker
      # boot), so their TFX, Beam and TensorFlow versions match the launcher's.
      f'--sdk_container_image={self.container_image}',
      '--experiments=use_runner_v2',
    ]
    if self.service_account:
      args.append(f'--service_account_email={self.service_account}')
    return tuple(args) + self.extra_beam_args
