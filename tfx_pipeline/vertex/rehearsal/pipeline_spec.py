"""The compiled PipelineJob JSON, read as Vertex AI Pipelines reads it, for the rehearsal.

`load` maps every `gs://BUCKET/...` in it onto `<rehearsal root>/gcs/BUCKET/...`
(the one mapping of the rehearsal); `Task` is one node of the DAG: a container
(its command, arguments and inputs) or a resolver / importer that Vertex runs
itself; `in_order` gives the tasks as Vertex would start them, upstream first.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from typing import Dict, List, Optional

GCS_FOLDER = 'gcs'


class SpecError(ValueError):
  """The compiled JSON has something the rehearsal cannot run; one line."""


def gcs_root(rehearsal_root: str) -> str:
  """Where `gs://` points in a rehearsal: gs://b/x is <rehearsal root>/gcs/b/x."""
  return os.path.join(os.path.abspath(rehearsal_root), GCS_FOLDER)


def local_path(uri: str, rehearsal_root: str) -> str:
  """`uri` with gs:// mapped as the rehearsal maps it; any other path unchanged."""
  if uri.startswith('gs://'):
    return os.path.join(gcs_root(rehearsal_root), uri[len('gs://') :])
  return uri


@dataclasses.dataclass(frozen=True)
class Task:
  """One node of the compiled DAG."""

  name: str
  upstream: List[str]
  # {input name: (producer task, its output key)}.
  input_artifacts: Dict[str, tuple]
  # {name: {'stringValue': ...} | {'intValue': ...} | {'doubleValue': ...}}.
  parameters: Dict[str, dict]
  # {output name: artifact type schema}, and the input types by name.
  output_types: Dict[str, dict]
  input_types: Dict[str, dict]
  container: Optional[dict] = None
  cache: bool = False  # Its cachingOptions: may an earlier run's outputs stand in for a run?
  resolver: Optional[dict] = None
  importer: Optional[dict] = None


def load(path: str, rehearsal_root: str) -> dict:
  """The PipelineJob JSON at `path`, with every gs:// URI mapped under `rehearsal_root`."""
  with open(path) as f:
    text = f.read()
  # Plain text replacement reaches the URIs inside JSON-encoded parameters too
  # (custom_config, push_destination), which is where most of them are.
  return json.loads(text.replace('gs://', gcs_root(rehearsal_root) + '/'))


def tasks(job: dict) -> Dict[str, Task]:
  """Every task of the pipeline's root DAG, by name."""
  spec = job['pipelineSpec']
  executors = spec['deploymentSpec']['executors']
  out = {}
  for name, task in spec['root']['dag']['tasks'].items():
    component = spec['components'][task['componentRef']['name']]
    executor = executors[component['executorLabel']]
    inputs = task.get('inputs', {})
    artifacts = {}
    for key, value in inputs.get('artifacts', {}).items():
      source = value.get('taskOutputArtifact')
      if source is None:
        raise SpecError(f"task {name}: input {key} is not another task's output ({value}).")
      artifacts[key] = (source['producerTask'], source['outputArtifactKey'])
    parameters = {}
    for key, value in inputs.get('parameters', {}).items():
      constant = value.get('runtimeValue', {}).get('constantValue')
      if constant is None:
        raise SpecError(f'task {name}: parameter {key} is not a constant ({value}).')
      parameters[key] = constant
    definitions = component.get('inputDefinitions', {}).get('artifacts', {})
    out[name] = Task(
      name=name,
      upstream=sorted(set(task.get('dependentTasks', [])) | {p for p, _ in artifacts.values()}),
      input_artifacts=artifacts,
      parameters=parameters,
      output_types={
        k: v['artifactType']
        for k, v in component.get('outputDefinitions', {}).get('artifacts', {}).items()
      },
      input_types={k: v['artifactType'] for k, v in definitions.items()},
      container=executor.get('container'),
      cache=bool(task.get('cachingOptions', {}).get('enableCache')),
      resolver=executor.get('resolver'),
      importer=executor.get('importer'),
    )
  return out


def in_order(all_tasks: Dict[str, Task]) -> List[Task]:
  """The tasks upstream first; among those ready together, in the pipeline's own order."""
  done, order = set(), []
  pending = list(all_tasks)
  while pending:
    ready = [n for n in pending if set(all_tasks[n].upstream) <= done]
    if not ready:
      raise SpecError(f'the tasks {", ".join(pending)} wait on each other: no order runs them.')
    # Resolvers first: they answer at once, as on Vertex.
    ready.sort(key=lambda n: (all_tasks[n].container is not None, n))
    order.append(all_tasks[ready[0]])
    done.add(ready[0])
    pending.remove(ready[0])
  return order


def executor_input(
  task: Task, inputs: Dict[str, List[dict]], outputs: Dict[str, str], output_file: str
) -> dict:
  """The ExecutorInput Vertex passes a container task as `{{$}}`.

  `inputs`: the runtime artifacts (name, uri, metadata) of each input; `outputs`:
  each output's URI; `output_file`: where the task writes its ExecutorOutput.
  """
  return {
    'inputs': {
      'parameters': task.parameters,
      'artifacts': {
        key: {'artifacts': [{**a, 'type': task.input_types[key]} for a in artifacts]}
        for key, artifacts in inputs.items()
      },
    },
    'outputs': {
      'artifacts': {
        key: {
          'artifacts': [
            {
              'name': artifact_name(uri),
              'type': task.output_types[key],
              'uri': uri,
              'metadata': {},
            }
          ]
        }
        for key, uri in outputs.items()
      },
      'outputFile': output_file,
    },
  }


def artifact_name(uri: str) -> str:
  """The ML Metadata resource name Vertex gives an output artifact, one per output URI."""
  digest = hashlib.sha256(uri.encode()).hexdigest()[:20]
  return f'projects/rehearsal/locations/local/metadataStores/default/artifacts/{digest}'


def command_line(task: str, container: dict, invocation: str) -> List[str]:
  """A container's (or its driver's) command and arguments with `{{$}}` filled.

  SpecError for any other placeholder.
  """
  filled = []
  for word in container['command'] + container.get('args', []):
    word = word.replace('{{$}}', invocation)
    if '{{$' in word:
      raise SpecError(f'task {task}: the rehearsal cannot fill the placeholder in {word!r}.')
    filled.append(word)
  return filled
