"""`--hparams-from`: an earlier run's best hyperparameters, as the Trainer's input artifact.

TFX's Trainer reads a HyperParameters artifact as the one and only file in its
folder (`io_utils.get_only_uri_in_dir`): any other file or folder there fails
it. So the runner does not import the folder it is given; it finds the
hyperparameters file there and imports a one-file copy of it, kept under
`<pipeline-root>/hparams_from/<hash of its contents>/` so that the same
hyperparameters are the same artifact on a rerun (and TFX's cache holds).
"""

from __future__ import annotations

import json
import os

from modules.runtime import content_key, whole_file
from tfx_pipeline.cli_paths import PathError

FILE_NAME = 'best_hyperparameters.txt'  # What TFX's Tuner writes in its artifact.
STAGING_DIR = 'hparams_from'
_WHAT = (
  f"a Tuner's best_hyperparameters/<id> folder, the {FILE_NAME} in it, or a JSON file "
  'of keras-tuner hyperparameters like it'
)


def find(path: str) -> str:
  """The hyperparameters file `path` names; raises PathError if it holds none."""
  if os.path.isdir(path):
    found = os.path.join(path, FILE_NAME)
    if not os.path.isfile(found):
      raise PathError(f'--hparams-from {path}: no {FILE_NAME} in this folder; pass {_WHAT}.')
  elif os.path.isfile(path):
    found = path
  else:
    raise PathError(f'--hparams-from {path}: no such file or folder; pass {_WHAT}.')
  read(found)
  return found


def read(path: str) -> dict:
  """A keras-tuner HyperParameters config (`{"space": [...], "values": {...}}`) from `path`."""
  try:
    with open(path) as f:
      config = json.load(f)
  except (OSError, UnicodeDecodeError, ValueError) as e:
    raise PathError(f'--hparams-from {path}: cannot read it as JSON ({e}); pass {_WHAT}.') from None
  if not (
    isinstance(config, dict)
    and isinstance(config.get('space'), list)
    and isinstance(config.get('values'), dict)
  ):
    raise PathError(
      f'--hparams-from {path}: not keras-tuner hyperparameters (a JSON object '
      f'with "space" and "values", as in {FILE_NAME}); pass {_WHAT}.'
    )
  return config


def stage(path: str, pipeline_root: str) -> str:
  """A folder under `pipeline_root` that holds `path`'s hyperparameters file alone."""
  with open(find(path), 'rb') as f:
    contents = f.read()
  folder = os.path.join(pipeline_root, STAGING_DIR, content_key.of(contents))
  target = os.path.join(folder, FILE_NAME)
  if not os.path.isfile(target):
    os.makedirs(folder, exist_ok=True)
    whole_file.write(target, contents)
  return folder
