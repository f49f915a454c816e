"""Reads a finished run back from ML Metadata: what ran, what was cached, what came out."""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Dict, List, Optional

import ml_metadata as mlmd
from ml_metadata.proto import metadata_store_pb2

_STATE_NAMES = {
  metadata_store_pb2.Execution.COMPLETE: 'executed',
  metadata_store_pb2.Execution.CACHED: 'cached',
  metadata_store_pb2.Execution.FAILED: 'failed',
  metadata_store_pb2.Execution.RUNNING: 'running',
}


@dataclasses.dataclass
class NodeResult:
  """One component's execution in a run, its output artifacts by key and its text properties."""

  state: str
  outputs: Dict[str, List[metadata_store_pb2.Artifact]]
  # TFX records a component's execution properties here (the Evaluator's example_splits...).
  properties: Dict[str, str] = dataclasses.field(default_factory=dict)


def sqlite_config(path: str) -> metadata_store_pb2.ConnectionConfig:
  config = metadata_store_pb2.ConnectionConfig()
  config.sqlite.filename_uri = path
  config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
  return config


def latest_run(metadata_path: str, pipeline_name: str) -> Dict[str, NodeResult]:
  """Component id -> NodeResult for the newest run of `pipeline_name`."""
  store = mlmd.MetadataStore(sqlite_config(metadata_path))
  runs = _runs(store, pipeline_name)
  if not runs:
    return {}
  return _results(store, max(runs, key=lambda c: (c.create_time_since_epoch, c.id)), pipeline_name)


def run_results(metadata_path: str, pipeline_name: str, run_id: str) -> Dict[str, NodeResult]:
  """Component id -> NodeResult for the run `run_id` (its executions only; {} if none)."""
  store = mlmd.MetadataStore(sqlite_config(metadata_path))
  run = store.get_context_by_type_and_name(RUN_CONTEXT, run_id)
  return _results(store, run, pipeline_name) if run is not None else {}


# ML Metadata's context of one pipeline run; its name is the run id.
RUN_CONTEXT = 'pipeline_run'


def _runs(store, pipeline_name: str) -> List[metadata_store_pb2.Context]:
  pipeline = store.get_context_by_type_and_name('pipeline', pipeline_name)
  if pipeline is None:
    return []
  in_pipeline = {e.id for e in store.get_executions_by_context(pipeline.id)}
  return [
    c
    for c in store.get_contexts_by_type(RUN_CONTEXT)
    if any(e.id in in_pipeline for e in store.get_executions_by_context(c.id))
  ]


def _results(store, run, pipeline_name: str) -> Dict[str, NodeResult]:
  results = {}
  for execution in store.get_executions_by_context(run.id):
    node = _node_id(store, execution.id, pipeline_name)
    events = [
      e
      for e in store.get_events_by_execution_ids([execution.id])
      if e.type == metadata_store_pb2.Event.OUTPUT
    ]
    artifacts = {a.id: a for a in store.get_artifacts_by_id([e.artifact_id for e in events])}
    outputs: Dict[str, List[metadata_store_pb2.Artifact]] = {}
    for event in events:
      outputs.setdefault(event.path.steps[0].key, []).append(artifacts[event.artifact_id])
    properties = {
      k: v.string_value
      for k, v in execution.custom_properties.items()
      if v.HasField('string_value')
    }
    state = _STATE_NAMES.get(execution.last_known_state, 'unknown')
    results[node] = NodeResult(state, outputs, properties)
  return results


def _node_id(store, execution_id: int, pipeline_name: str) -> str:
  prefix = pipeline_name + '.'
  for context in store.get_contexts_by_execution(execution_id):
    if context.name.startswith(prefix):
      return context.name[len(prefix) :]
  return str(execution_id)


def output_uri(run: Dict[str, NodeResult], node: str, key: str) -> Optional[str]:
  result = run.get(node)
  if result and result.outputs.get(key):
    return result.outputs[key][0].uri
  return None


def evaluated_split(run: Dict[str, NodeResult]) -> str:
  """The split the run's Evaluator scored ('test', or 'eval' for data without a test split)."""
  result = run.get('Evaluator')
  splits = json.loads(result.properties.get('example_splits') or 'null') if result else None
  return ','.join(splits) if splits else 'eval'


def best_hyperparameters(uri: str) -> dict:
  """The Tuner's (or importer's) best_hyperparameters.txt as a keras-tuner config dict."""
  with open(os.path.join(uri, 'best_hyperparameters.txt')) as f:
    return json.load(f)


def pushed_destination(run: Dict[str, NodeResult]) -> Optional[str]:
  """Where Pusher put the model, or None when the model was not blessed."""
  result = run.get('Pusher')
  if not result or not result.outputs.get('pushed_model'):
    return None
  artifact = result.outputs['pushed_model'][0]
  if not artifact.custom_properties['pushed'].int_value:
    return None
  return artifact.custom_properties['pushed_destination'].string_value
