"""Vertex AI custom jobs as local processes: the rehearsal's stand-in for Vertex's job service.

TFX's cloud Tuner and Trainer start their work through one function,
`tfx.extensions.google_cloud_ai_platform.training_clients.get_job_client`,
whose `VertexJobClient` creates a gapic `JobServiceClient`, calls
`create_custom_job` and polls `get_custom_job`. `install()` makes that
function return a `VertexJobClient` whose gapic client is a `LocalJobService`;
everything else of TFX runs as it is.

`create_custom_job` checks each worker pool's machine request as Vertex does
(tfx_pipeline/vertex/machines.py; Vertex answers a bad one with
INVALID_ARGUMENT), then runs every replica of every pool as a process of this
machine, with the pool's container command and environment, and the
`CLUSTER_SPEC` (and, with more than one replica, `TF_CONFIG`) Vertex sets:
`workerpool0`'s address is the primary replica's, `task` names the replica.
Addresses are loopback ports. A replica's output is prefixed with its name
(`[workerpool1-0] ...`). The job fails as soon as a replica fails (the others
are stopped) and succeeds when every replica has exited 0. `get_custom_job`
answers once the job has ended, so TFX's 30-second polling adds no wait.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from typing import List, Optional

from tfx_pipeline import warm_start

# Lines the rehearsal shows on its console, not only in the log.
TAG = '[rehearsal] '
_ERROR = re.compile(r'^(\w+\.)*\w*(Error|Exception|Exit|Interrupt)\b:?.*')
_QUALIFIED = re.compile(r'^(\w+\.)+(\w+)')


@dataclasses.dataclass
class CustomJob:
  """What `get_custom_job` returns: the fields TFX reads (name, state), and why it failed."""

  name: str
  display_name: str
  state: object
  error: str = ''

  def __repr__(self) -> str:
    text = f'CustomJob({self.display_name}, {getattr(self.state, "name", self.state)}'
    return text + (f': {self.error})' if self.error else ')')


class _Replica:
  def __init__(self, pool: int, index: int, process: subprocess.Popen):
    self.name = f'workerpool{pool}-{index}'
    self.process = process
    self.last_error = ''
    self.relay: Optional[threading.Thread] = None  # Copies its output (_relay).


class LocalJobService:
  """Stands in for aiplatform_v1's JobServiceClient: custom jobs run here, as processes."""

  def __init__(self, region: str):
    self._region = region
    self._jobs = {}
    self._lock = threading.Lock()

  def create_custom_job(self, parent: str, custom_job: dict):
    from google.api_core import exceptions

    from tfx_pipeline.vertex import machines

    pools = custom_job['job_spec']['worker_pool_specs']
    for i, pool in enumerate(pools):
      spec = pool.get('machine_spec', {})
      try:
        machines.check(
          spec.get('machine_type', ''),
          spec.get('accelerator_type'),
          int(spec.get('accelerator_count', 0)),
          spec.get('tpu_topology'),
        )
      except ValueError as e:
        raise exceptions.InvalidArgument(f'worker pool {i}: {e}') from None
    job_id = str(int(time.time() * 1000))
    name = f'{parent}/customJobs/{job_id}'
    display = custom_job.get('display_name', job_id)
    _say(f'{display}: {_describe(pools)}; Vertex accepts these machines; here they run on the CPU')
    replicas = _start(pools, job_id)
    for r in replicas:
      role = 'primary replica' if r.name == 'workerpool0-0' else 'replica'
      _say(f'{display}: {r.name} started as process {r.process.pid} ({role})')
    self._jobs[name] = (display, replicas)
    return CustomJob(name=name, display_name=display, state=_state('RUNNING'))

  def get_custom_job(self, name: str, retry=None) -> CustomJob:
    del retry
    display, replicas = self._jobs[name]
    failed = _wait(replicas)
    if failed:
      error = f'{failed.name} exited with code {failed.process.returncode}'
      if failed.last_error:
        error += f': {failed.last_error}'
      _say(f'{display}: failed: {error}')
      return CustomJob(name, display, _state('FAILED'), error)
    _say(f'{display}: every replica exited 0')
    return CustomJob(name, display, _state('SUCCEEDED'))


def _state(name: str):
  from google.cloud.aiplatform_v1.types import job_state

  return getattr(job_state.JobState, f'JOB_STATE_{name}')


def _say(text: str) -> None:
  print(TAG + text, flush=True)


def _describe(pools: List[dict]) -> str:
  parts = []
  for i, pool in enumerate(pools):
    spec = pool.get('machine_spec', {})
    machine = spec.get('machine_type', '?')
    if spec.get('accelerator_type'):
      machine += f' + {spec.get("accelerator_count", 0)} x {spec["accelerator_type"]}'
    parts.append(f'workerpool{i} {pool.get("replica_count", 1)} x {machine}')
  return ', '.join(parts)


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def cluster_env(pools: List[dict], addresses: List[List[str]], pool: int, index: int) -> dict:
  """The CLUSTER_SPEC (and TF_CONFIG with several replicas) Vertex sets on one replica."""
  cluster = {f'workerpool{i}': a for i, a in enumerate(addresses) if a}
  env = {
    'CLUSTER_SPEC': json.dumps(
      {
        'cluster': cluster,
        'environment': 'cloud',
        'task': {'type': f'workerpool{pool}', 'index': index},
        'job': json.dumps({'worker_pool_specs': pools}),
      }
    )
  }
  if sum(len(a) for a in addresses) > 1:
    # Vertex names the pools as TensorFlow's roles: chief, worker, ps, evaluator.
    roles = ('chief', 'worker', 'ps', 'evaluator')
    env['TF_CONFIG'] = json.dumps(
      {
        'cluster': {roles[i]: a for i, a in enumerate(addresses) if a},
        'task': {'type': roles[pool], 'index': index},
        'environment': 'cloud',
      }
    )
  return env


def _start(pools: List[dict], job_id: str) -> List[_Replica]:
  addresses = [
    [f'127.0.0.1:{_free_port()}' for _ in range(int(pool.get('replica_count', 1)))]
    for pool in pools
  ]
  replicas = []
  for i, pool in enumerate(pools):
    container = pool.get('container_spec', {})
    command = list(container.get('command', [])) + list(container.get('args', []))
    if command[:1] in (['python'], ['python3']):
      command[0] = sys.executable  # The image's python: here, the project's environment.
    for j in range(len(addresses[i])):
      env = dict(os.environ)
      env.update({e['name']: e['value'] for e in container.get('env', [])})
      env.update(cluster_env(pools, addresses, i, j))
      env['CLOUD_ML_JOB_ID'] = job_id
      if warm_start.available() and command[1:2] == ['-m']:
        # In this task's process group, as a child process would be: stopped with it.
        process = warm_start.start(command, env=env, group=os.getpgid(0))
      else:
        process = subprocess.Popen(
          command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
      replica = _Replica(i, j, process)
      replica.relay = threading.Thread(target=_relay, args=(replica,), daemon=True)
      replica.relay.start()
      replicas.append(replica)
  return replicas


_OUT = threading.Lock()


def _relay(replica: _Replica) -> None:
  """Copies a replica's output to this process's, each line prefixed with the replica's name."""
  for line in replica.process.stdout:
    line = line.rstrip('\n')
    if is_error(line):
      replica.last_error = error_line(line)
    with _OUT:
      print(f'[{replica.name}] {line}', flush=True)


def is_error(line: str) -> bool:
  """Whether `line` is the last line of a traceback (`ValueError: ...`)."""
  return bool(_ERROR.match(line))


def error_line(line: str) -> str:
  """A traceback's last line with its class unqualified (`HypermodelError: ...`)."""
  return _QUALIFIED.sub(r'\2', line, count=1)


def _wait(replicas: List[_Replica]) -> Optional[_Replica]:
  """Waits for every replica to end; the first to fail (the others stopped), or None."""
  failed = None
  while failed is None and any(r.process.poll() is None for r in replicas):
    failed = next((r for r in replicas if r.process.poll() not in (None, 0)), None)
    time.sleep(0.5)
  failed = failed or next((r for r in replicas if r.process.returncode != 0), None)
  for r in replicas:
    if r.process.poll() is None:
      r.process.terminate()
  for r in replicas:
    r.process.wait()
    # Its last lines, before the job's state is told; a process it left behind (the oracle
    # a chief forked) may hold the pipe open, so not for ever.
    r.relay.join(timeout=5)
  return failed


def install() -> None:
  """Makes TFX's cloud executors start their Vertex custom jobs through a LocalJobService."""
  from tfx.extensions.google_cloud_ai_platform import training_clients

  class LocalVertexJobClient(training_clients.VertexJobClient):
    def create_client(self) -> None:
      self._client = LocalJobService(self._region)

  def get_job_client(enable_vertex: Optional[bool] = False, vertex_region: Optional[str] = None):
    if not enable_vertex:
      raise ValueError('the rehearsal runs Vertex AI custom jobs only (enable_vertex=True).')
    return LocalVertexJobClient(vertex_region)

  training_clients.get_job_client = get_job_client
