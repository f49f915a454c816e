"""Runs a compiled PipelineJob's tasks on this machine, upstream first, as Vertex AI Pipelines does.

A container task is a process running the command and arguments of the
JSON's `deploymentSpec` (through `task.py`, so its custom jobs run locally),
with `{{$}}` filled by the ExecutorInput Vertex would build: the upstream
tasks' output artifacts, the task's parameters, output URIs under the
pipeline root and an `outputFile`, read back once the task ends. ExampleGen's
`preCacheCheck` driver runs first, as on Vertex. Resolvers are answered from
the rehearsal's record (artifacts.py) and importers from their spec. Dataflow
options give way to local Beam ones. Every line a task prints goes to the
log; the console gets each task's start and end, the jobs' replicas and each
finished trial.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import time
from typing import Callable, Dict, List, Optional

from tfx_pipeline import warm_start
from tfx_pipeline.vertex.rehearsal import artifacts, jobs, pipeline_spec

_TRIAL = re.compile(r'^\[(workerpool\d+-\d+)\] (trial \d+/\S+: .*)$')
_REPLICA = re.compile(r'^\[workerpool\d+-\d+\] ')
_JOB_FAILED = re.compile(r': failed: (.*)$')
# Beam options that are Dataflow's, in the compiled JSON.
_DATAFLOW = '--runner=DataflowRunner'


class TaskFailed(RuntimeError):
  """A task of the rehearsal failed; `task` names it, the message says why in one line."""

  def __init__(self, task: str, cause: str):
    super().__init__(f'task {task} failed: {cause}')
    self.task = task


@dataclasses.dataclass
class Rehearsal:
  """One rehearsal's settings: where it runs, and how."""

  root: str  # The rehearsal root: gcs/, image/, metadata/, logs/.
  image_dir: str  # The image's working directory (image.py).
  beam_args: List[str]  # Local Beam options for the Beam steps.
  one_worker_args: List[str]  # Appended for the steps that must run on one worker.
  one_worker_steps: tuple = ()
  echo: Callable[[str], None] = print
  run_id: str = ''
  project: str = ''


def run(job: dict, rehearsal: Rehearsal, processes: list):
  """Runs every task of `job`: (each task's output artifacts, each task's state). Raises TaskFailed.

  A state is 'executed' or, for a container task taken from the cache, 'cached'.
  `processes` holds the task process running now, for the caller to stop on Ctrl-C.
  """
  record = artifacts.Record(rehearsal.root)
  root = job['runtimeConfig']['gcsOutputDirectory']
  # Vertex's layout: <pipeline root>/<project>/<run>/<task>_<id>/<output>.
  job_dir = os.path.join(root, rehearsal.project, rehearsal.run_id)
  order = pipeline_spec.in_order(pipeline_spec.tasks(job))
  if any(_DATAFLOW in t.container.get('args', []) for t in order if t.container):
    rehearsal.echo(
      'beam: the Dataflow options of the compiled pipeline are replaced by local Beam '
      f'({" ".join(rehearsal.beam_args) or "DirectRunner defaults"})'
    )
  outputs: Dict[str, Dict[str, List[dict]]] = {}
  states: Dict[str, str] = {}
  for n, task in enumerate(order, 1):
    inputs = {key: outputs[p].get(out, []) for key, (p, out) in task.input_artifacts.items()}
    start, new = time.monotonic(), True
    rehearsal.echo(f'[{n}/{len(order)}] {task.name} ...')
    if task.resolver is not None:  # Its outputs are recorded already.
      new = False
      try:
        outputs[task.name] = record.resolve(task.resolver, inputs)
      except artifacts.ResolverError as e:
        raise TaskFailed(task.name, str(e)) from None
      found = [a['uri'] for found in outputs[task.name].values() for a in found]
      how = f'found {", ".join(found)}' if found else 'found none'
    elif task.importer is not None:
      outputs[task.name] = _imported(task)
      how = f'imported {outputs[task.name]["result"][0]["uri"]}'
    else:
      task_dir = os.path.join(job_dir, f'{task.name}_{n}')
      outputs[task.name], cached = _container(task, inputs, task_dir, rehearsal, processes)
      how = 'cached' if cached else f'done in {time.monotonic() - start:.1f}s'
      new = not cached
    for key, found in outputs[task.name].items() if new else ():
      for a in found:
        record.add(a, task.output_types[key], rehearsal.run_id, task.name)
    states[task.name] = 'cached' if how == 'cached' else 'executed'
    rehearsal.echo(f'[{n}/{len(order)}] {task.name} {how}')
  return outputs, states


def _container(task, inputs, task_dir, rehearsal, processes):
  """Runs a container task, or takes an earlier run's outputs for it: (outputs, cached)."""
  uris = {key: os.path.join(task_dir, key) for key in task.output_types}
  output_file = os.path.join(task_dir, 'executor_output.json')
  invocation = pipeline_spec.executor_input(task, inputs, uris, output_file)
  *driver, command = _commands(task, json.dumps(invocation), rehearsal)
  for words in driver:  # ExampleGen's driver: the data's fingerprint, part of the cache key.
    _run_process(task.name, words, rehearsal, processes)
  cache = artifacts.Cache(rehearsal.root)
  key = cache.key(task, inputs, _driver_parameters(output_file) if driver else {})
  if task.cache:
    found = cache.get(key)
    if found is not None:
      return found, True
  _run_process(task.name, command, rehearsal, processes)
  outputs = _read_outputs(task, invocation, output_file)
  cache.put(key, outputs)
  return outputs, False


def _driver_parameters(output_file: str) -> dict:
  if not os.path.exists(output_file):
    return {}
  with open(output_file) as f:
    return json.load(f).get('parameterValues', {})


def _imported(task: pipeline_spec.Task) -> Dict[str, List[dict]]:
  uri = task.importer['artifactUri'].get('constantValue', {}).get('stringValue')
  if uri is None:
    uri = task.parameters.get('artifact_uri', {}).get('stringValue')
  if not uri:
    raise TaskFailed(task.name, 'the importer names no artifact URI the rehearsal can read.')
  key = next(iter(task.output_types))
  return {key: [{'name': pipeline_spec.artifact_name(uri), 'uri': uri, 'metadata': {}}]}


def _commands(task: pipeline_spec.Task, invocation: str, rehearsal: Rehearsal) -> List[List[str]]:
  """The task's commands: the preCacheCheck driver where it has one, then the container's."""
  pre = task.container.get('lifecycle', {}).get('preCacheCheck')
  commands = []
  for spec in ([pre] if pre else []) + [task.container]:
    words = pipeline_spec.command_line(task.name, spec, invocation)
    words = _local_beam(words, task.name, rehearsal)
    if words[:2] not in (['python', '-m'], ['python3', '-m']):
      raise TaskFailed(task.name, f'its command {" ".join(words[:3])} is not `python -m MODULE`.')
    commands.append([sys.executable, '-m', 'tfx_pipeline.vertex.rehearsal.task', *words[1:]])
  return commands


def _local_beam(words: List[str], task: str, rehearsal: Rehearsal) -> List[str]:
  """`words` with the Dataflow options (all Beam options after them) replaced by local ones."""
  if _DATAFLOW not in words:
    return words
  kept = words[: words.index(_DATAFLOW)]
  extra = rehearsal.one_worker_args if task in rehearsal.one_worker_steps else []
  return kept + list(rehearsal.beam_args) + list(extra)


def task_env(image_dir: str) -> dict:
  """The environment of a task's process: the image's working directory on the import path."""
  return dict(os.environ, PYTHONPATH=image_dir, TF_USE_LEGACY_KERAS='0')


def _run_process(task: str, command: List[str], rehearsal: Rehearsal, processes: list) -> None:
  """Runs one command of `task`, its output into the log; TaskFailed if it fails."""
  env = task_env(rehearsal.image_dir)
  if warm_start.available():  # A process group of its own there too.
    process = warm_start.start(command, cwd=rehearsal.image_dir, env=env)
  else:
    process = subprocess.Popen(
      command,
      cwd=rehearsal.image_dir,
      env=env,
      stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT,
      text=True,
      errors='replace',
      # Its own process group, with its jobs' replicas: stopped together (stop_all).
      start_new_session=True,
    )
  processes.append(process)
  last_error, job_error = '', ''
  try:
    for line in process.stdout:
      line = line.rstrip('\n')
      print(line, flush=True)  # The log.
      if line.startswith(jobs.TAG):
        rehearsal.echo(f'  {line[len(jobs.TAG) :]}')
        failed = _JOB_FAILED.search(line)
        job_error = failed.group(1) if failed else job_error
      elif _TRIAL.match(line):
        replica, text = _TRIAL.match(line).groups()
        rehearsal.echo(f'  {replica}: {text}')
      elif jobs.is_error(_REPLICA.sub('', line)):
        last_error = jobs.error_line(_REPLICA.sub('', line))
    process.wait()
  finally:
    stop_all([process])
    processes.remove(process)
  if process.returncode != 0:
    cause = f'its custom job failed: {job_error}' if job_error else last_error
    raise TaskFailed(task, _short(cause or f'exit code {process.returncode}'))


def stop_all(processes: list, grace: float = 5.0) -> None:
  """Stops each process and everything it started (its process group): TERM, then KILL."""
  # Each was started as the leader of its group: the group outlives it while its
  # replicas run.
  groups = [p.pid for p in processes]
  for group in groups:
    try:
      os.killpg(group, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
      pass
  deadline = time.monotonic() + grace
  for group in groups:
    while time.monotonic() < deadline and _alive(group):
      time.sleep(0.1)
    try:
      os.killpg(group, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
      pass
  for p in processes:
    p.wait()


def _alive(group: int) -> bool:
  try:
    os.killpg(group, 0)
    return True
  except (ProcessLookupError, PermissionError):
    return False


def _read_outputs(task: pipeline_spec.Task, invocation: dict, output_file: str) -> dict:
  """The task's output artifacts: the ExecutorOutput's, each with the name it was given."""
  declared = invocation['outputs']['artifacts']
  written = {}
  if os.path.exists(output_file):
    with open(output_file) as f:
      written = json.load(f).get('artifacts', {})
  out = {}
  for key, value in declared.items():
    given = value['artifacts'][0]
    found = (written.get(key) or {}).get('artifacts') or [given]
    out[key] = [
      {'name': a.get('name') or given['name'], 'uri': a['uri'], 'metadata': a.get('metadata', {})}
      for a in found
    ]
  return out


def _short(text: str, limit: int = 300) -> str:
  text = ' '.join(text.split())
  return text if len(text) <= limit else text[: limit - 3] + '...'


def pushed_model(outputs: dict) -> Optional[str]:
  """Where the Pusher put the model, or None when it pushed nothing."""
  for artifact in outputs.get('Pusher', {}).get('pushed_model', []):
    metadata = artifact.get('metadata', {})
    if metadata.get('pushed') in (1, 1.0, True):
      return metadata.get('pushed_destination')
  return None
