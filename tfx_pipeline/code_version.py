"""Fingerprints of the user code, so editing `modules/` invalidates TFX's cache.

UDFs passed by dotted path are not part of a component's cache key (only a
`module_file` wheel is), so without this a rerun after a code change would
silently reuse outputs of the old code. The fingerprint travels in each
component's `custom_config`, which is part of the key.
"""
import glob
import hashlib
import os
from typing import Iterable, Optional

from tfx_pipeline.config import PROJECT_ROOT

MODULES_DIR = os.path.join(PROJECT_ROOT, 'modules')
# What preprocessing_fn's graph depends on; the Tuner and Trainer depend on all of modules/.
TRANSFORM_SOURCES = ('features.py', 'module_config.py', 'preprocessing.py')


def fingerprint(paths: Iterable[str], root: str) -> str:
  """A short sha256 over the paths (relative to `root`) and contents of `paths`."""
  digest = hashlib.sha256()
  for path in sorted(paths):
    digest.update(os.path.relpath(path, root).encode() + b'\0')
    with open(path, 'rb') as f:
      digest.update(f.read())
  return digest.hexdigest()[:16]


def transform_code(modules_dir: Optional[str] = None) -> str:
  modules_dir = modules_dir or MODULES_DIR
  return fingerprint((os.path.join(modules_dir, name) for name in TRANSFORM_SOURCES), modules_dir)


def training_code(modules_dir: Optional[str] = None) -> str:
  """Every .py file of the modules package, sub-packages included: what tuner_fn and run_fn run."""
  modules_dir = modules_dir or MODULES_DIR
  return fingerprint(glob.glob(os.path.join(modules_dir, '**', '*.py'), recursive=True),
                     modules_dir)
