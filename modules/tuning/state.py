"""Where a search keeps its keras-tuner state, so a killed Tuner run resumes.

`tuner_fn` calls `search_dir`: the folder is `<tuning_dir>/<key>`, where
`tuning_dir` comes from the pipeline (`RunPaths`, one per pipeline) and the
key is a hash of the transformed data, the search options, the search space's
contents and a user's --hypermodel code. The same
data and options find the same folder, and keras-tuner (overwrite=False)
reloads its oracle there and skips finished trials; changed data or options get
a new folder, so old trials never mix with a different search.
"""

from __future__ import annotations

import glob
import json
import os
from typing import Iterable, Optional

from modules.runtime import console, whole_file
from modules.runtime.content_key import ContentKey

KEY_FILE = 'search.json'
# custom_config key of a --hypermodel module's fingerprint (tfx_pipeline/code_version.py).
MODEL_CODE_KEY = 'hypermodel_code'
# custom_config key of the earlier trials a --warm-start search learns from
# (tfx_pipeline/warm_search.py reads them, modules/tuning/warm_trials.py feeds them).
WARM_TRIALS_KEY = 'warm_trials'
LATEST_FILE = 'LATEST'
PROJECT_NAME = 'search'


def base_dir(pipeline_root: str, pipeline_name: str) -> str:
  """The pipeline's tuning_dir: every search of one pipeline, one folder per key."""
  return os.path.join(pipeline_root, 'tuning', pipeline_name)


def _digest(parts: Iterable[bytes]) -> str:
  key = ContentKey()
  for part in parts:
    key.add(part)
  return key.hex()


def data_fingerprint(transform_graph_path: str, data_files: Iterable[str]) -> str:
  """Content hash of the Transform graph plus names and sizes of the transformed data.

  Contents, not artifact URIs: a Transform rerun over the same data writes new
  folders but the same bytes, and should resume the same search.
  """
  import tensorflow as tf  # Only the Tuner needs it; pipeline.py imports this module too.

  parts = []
  for root, _, names in sorted(tf.io.gfile.walk(transform_graph_path)):
    for name in sorted(names):
      path = os.path.join(root, name)
      parts.append(os.path.relpath(path, transform_graph_path).encode())
      parts.append(ContentKey().add_file(path, end=b'').digest())
  for pattern in data_files:
    for path in sorted(tf.io.gfile.glob(pattern)):
      # The split folder and file name: artifact ids in the path above them vary.
      parts.append(
        f'{os.path.basename(os.path.dirname(path))}/{os.path.basename(path)}'
        f':{tf.io.gfile.stat(path).length}'.encode()
      )
  return _digest(parts)


def search_description(config, space_config, data: str, model_code: Optional[str] = None) -> dict:
  """What identifies a search: the data, the options that shape it, the search space's contents.

  `model_code`: a fingerprint of a user's --hypermodel module (None for the built-in model).
  """
  description = {'data': data, 'options': config.search_options(), 'space': space_config}
  if model_code:
    description['model_code'] = model_code
  return description


def key_of(description: dict) -> str:
  return _digest([json.dumps(description, sort_keys=True).encode()])


def completed_trials(directory: str) -> int:
  """Finished trials keras-tuner will reload from `directory` (0 if it would start anew)."""
  project = os.path.join(directory, PROJECT_NAME)
  # keras-tuner reloads once its tuner file exists; a parallel search's chief reloads
  # from the oracle's (tfx_pipeline/parallel/component.py), which the oracle writes as
  # a trial ends, before a worker writes its tuner file: a Ctrl-C between the two
  # still resumes.
  markers = ('tuner*.json', 'oracle.json')
  if not any(glob.glob(os.path.join(project, marker)) for marker in markers):
    return 0
  done = 0
  for path in glob.glob(os.path.join(project, 'trial_*', 'trial.json')):
    with open(path) as f:
      done += json.load(f).get('status') == 'COMPLETED'
  return done


def _what_changed(old: dict, new: dict) -> str:
  parts = ('data', 'options', 'space', 'model_code')
  changed = [part for part in parts if old.get(part) != new.get(part)]
  names = {
    'data': 'data',
    'options': 'search options',
    'space': 'search space',
    'model_code': '--hypermodel code',
  }
  return ', '.join(names[c] for c in changed) or 'search'


def prepare(base: str, description: dict, echo=console.line) -> str:
  """The search folder for `description` under `base`; says whether it resumes or starts fresh."""
  key = key_of(description)
  directory = os.path.join(base, key)
  done = completed_trials(directory)
  previous = _latest(base)
  if done:
    echo(f'tuning: resuming the search in {directory} ({done} trials already done)')
  elif previous and previous != key:
    old = read_description(os.path.join(base, previous))
    echo(
      f'tuning: {_what_changed(old, description)} changed since the last search '
      f'({previous}): starting a fresh search in {directory}'
    )
  else:
    echo(f'tuning: new search in {directory}')
  os.makedirs(directory, exist_ok=True)
  # Whole or not at all: a run stopped here must not leave a file the next one cannot read.
  whole_file.write(
    os.path.join(directory, KEY_FILE), json.dumps(description, indent=1, sort_keys=True)
  )
  whole_file.write(os.path.join(base, LATEST_FILE), key)
  return directory


def _latest(base: str) -> Optional[str]:
  try:
    with open(os.path.join(base, LATEST_FILE)) as f:
      return f.read().strip() or None
  except FileNotFoundError:
    return None


def read_description(directory: str) -> dict:
  """What identifies the search in `directory` (its search.json; {} without one)."""
  try:
    with open(os.path.join(directory, KEY_FILE)) as f:
      return json.load(f)
  except FileNotFoundError:
    return {}


def latest_search(base: str) -> Optional[str]:
  """The folder of the newest search under `base` (what the runner reports on)."""
  key = _latest(base)
  return os.path.join(base, key) if key else None


def search_dir(fn_args, echo=console.line) -> Optional[str]:
  """The persistent search folder for a Tuner run, or None when the pipeline gave no tuning_dir."""
  # keras_tuner is heavy: keep pipeline.py's import of this module light.
  from modules.module_config import ModuleConfig, RunPaths
  from modules.search import search_space

  base = RunPaths.from_custom_config(fn_args.custom_config).tuning_dir
  if not base:
    return None
  config = ModuleConfig.from_custom_config(fn_args.custom_config)
  data = data_fingerprint(
    fn_args.transform_graph_path, list(fn_args.train_files) + list(fn_args.eval_files)
  )
  space = search_space.spec_json(search_space.from_custom_config(fn_args.custom_config))
  model_code = fn_args.custom_config.get(MODEL_CODE_KEY)
  return prepare(base, search_description(config, space, data, model_code), echo=echo)
