"""The rehearsal's record of artifacts, standing in for Vertex ML Metadata's, and its resolvers.

Every output artifact of every rehearsal under one root is appended to
`<root>/metadata/artifacts.jsonl`. The compiled pipeline's resolver tasks
(TFX's latest-blessed-model resolver) are filters on Vertex's artifact store
(`schema_title="tfx.ModelBlessing" AND state=LIVE AND ...`); `resolve` answers
them from this record, newest first, so a second rehearsal gets the first
one's blessed model as the Evaluator's baseline, as a second run on Vertex does.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from typing import Dict, List

import yaml

RECORD = os.path.join('metadata', 'artifacts.jsonl')
CACHE = os.path.join('metadata', 'cache.jsonl')
# `{{$.inputs.artifacts['input'].metadata['current_model_id']}}` in a filter.
_PLACEHOLDER = re.compile(r"\{\{\$\.inputs\.artifacts\['(\w+)'\]\.metadata\['(\w+)'\]\}\}")
_METADATA = re.compile(r'metadata\.(\w+)\.(number_value|string_value|bool_value)$')


class ResolverError(ValueError):
  """A resolver filter the rehearsal cannot answer; one line."""


def schema_title(artifact_type: dict) -> str:
  """`tfx.Model` from an artifact type's schemaTitle or its instanceSchema's title."""
  if 'schemaTitle' in artifact_type:
    return artifact_type['schemaTitle']
  return yaml.safe_load(artifact_type.get('instanceSchema', '')).get('title', 'tfx.Artifact')


class Record:
  """The artifacts of every rehearsal under one root, as JSON lines."""

  def __init__(self, rehearsal_root: str):
    self.path = os.path.join(rehearsal_root, RECORD)

  def add(self, artifact: dict, artifact_type: dict, run: str, task: str) -> None:
    os.makedirs(os.path.dirname(self.path), exist_ok=True)
    entry = {
      'name': artifact['name'],
      'uri': artifact['uri'],
      'metadata': artifact.get('metadata', {}),
      'schema_title': schema_title(artifact_type),
      'state': 'LIVE',
      'run': run,
      'task': task,
      'created': time.time(),
    }
    with open(self.path, 'a') as f:
      f.write(json.dumps(entry) + '\n')

  def all(self) -> List[dict]:
    if not os.path.exists(self.path):
      return []
    with open(self.path) as f:
      return [json.loads(line) for line in f if line.strip()]

  def resolve(self, resolver: dict, inputs: Dict[str, List[dict]]) -> Dict[str, List[dict]]:
    """The artifacts a resolver task outputs: for each output, the newest that matches (or none)."""
    out = {}
    for key, query in resolver.get('outputArtifactQueries', {}).items():
      text = _fill(query['filter'], inputs)
      if text is None:  # Its input was empty: nothing to match.
        out[key] = []
        continue
      clauses = [_clause(c) for c in text.split(' AND ')]
      found = [a for a in self.all() if all(match(a) for match in clauses)]
      found.sort(key=lambda a: a['created'], reverse=True)
      out[key] = [{k: found[0][k] for k in ('name', 'uri', 'metadata')}] if found else []
    return out


class Cache:
  """Vertex's execution cache: a task whose spec, parameters and inputs ran before is not rerun.

  The key is what Vertex keys on: the component's command and arguments, its
  parameters (ExampleGen's with its driver's data fingerprint) and the names
  of its input artifacts. A task whose outputs are gone is run again.
  """

  def __init__(self, rehearsal_root: str):
    self.path = os.path.join(rehearsal_root, CACHE)

  @staticmethod
  def key(task, inputs: Dict[str, List[dict]], driver_parameters: dict) -> str:
    names = {k: [a['name'] for a in v] for k, v in sorted(inputs.items())}
    text = json.dumps(
      [task.name, task.container, task.parameters, driver_parameters, names], sort_keys=True
    )
    return hashlib.sha256(text.encode()).hexdigest()

  def get(self, key: str):
    if not os.path.exists(self.path):
      return None
    with open(self.path) as f:
      entries = [json.loads(line) for line in f if line.strip()]
    for entry in reversed(entries):
      outputs = entry['outputs']
      if entry['key'] == key and all(os.path.exists(a['uri']) for v in outputs.values() for a in v):
        return outputs
    return None

  def put(self, key: str, outputs: Dict[str, List[dict]]) -> None:
    os.makedirs(os.path.dirname(self.path), exist_ok=True)
    with open(self.path, 'a') as f:
      f.write(json.dumps({'key': key, 'outputs': outputs}) + '\n')


def _fill(text: str, inputs: Dict[str, List[dict]]):
  """`text` with its input placeholders filled; None when an input it names has no artifact."""
  for name, key in _PLACEHOLDER.findall(text):
    artifacts = inputs.get(name) or []
    if not artifacts:
      return None
    value = artifacts[0].get('metadata', {}).get(key)
    text = text.replace(f"{{{{$.inputs.artifacts['{name}'].metadata['{key}']}}}}", str(value))
  if '{{' in text:
    raise ResolverError(f'the rehearsal cannot fill the placeholders of the filter {text!r}.')
  return text


def _clause(text: str):
  """One `key=value` clause of a filter, as a test of a recorded artifact."""
  key, sep, value = text.strip().partition('=')
  if not sep:
    raise ResolverError(f'the rehearsal cannot read the filter clause {text!r}.')
  value = value.strip('"')
  if key in ('schema_title', 'state', 'name'):
    return lambda a: str(a[key]) == value
  m = _METADATA.match(key)
  if not m:
    raise ResolverError(f'the rehearsal cannot answer the filter clause {text!r}.')
  field, kind = m.groups()
  if kind == 'number_value':
    return lambda a: _number(a['metadata'].get(field)) == float(value)
  return lambda a: str(a['metadata'].get(field)).lower() == value.lower()


def _number(value):
  try:
    return float(value)
  except (TypeError, ValueError):
    return None
