"""Fingerprints of the user code, so editing `modules/` invalidates TFX's cache.

UDFs passed by dotted path are not part of a component's cache key (only a
`module_file` wheel is), so without this a rerun after a code change would
silently reuse outputs of the old code. The fingerprint travels in each
component's `custom_config`, which is part of the key: Transform's covers
preprocessing.py and what it imports from `modules` (found by reading the
imports, so a new one counts by itself); the Tuner's and Trainer's cover every
file of `modules/`, sub-packages included, and a `--hypermodel` module with
the files of the checkout (or of its own folder) that it imports.
"""

import ast
import glob
import os
from typing import Iterable, Optional, Set, Tuple

from modules.module_config import BUILTIN_BACKBONE, PRETRAINED_BACKBONES
from modules.runtime.content_key import ContentKey
from tfx_pipeline.config import PROJECT_ROOT

MODULES_DIR = os.path.join(PROJECT_ROOT, 'modules')
PACKAGE = 'modules'
TRANSFORM_ENTRY = 'preprocessing.py'  # preprocessing_fn's file.
FEATURES_ENTRY = os.path.join('training', 'feature_records.py')  # BackboneFeatures' records.


def fingerprint(paths: Iterable[str], root: str) -> str:
  """A short sha256 over the paths (relative to `root`) and contents of `paths`."""
  key = ContentKey()
  for path in sorted(paths):
    key.add(os.path.relpath(path, root)).add_file(path, end=b'')
  return key.hex()


def _module_files(root: str, parts) -> Iterable[str]:
  """The files the dotted name `parts` may be under `root` that exist: a module or a package."""
  for candidate in (os.path.join(root, *parts) + '.py', os.path.join(root, *parts, '__init__.py')):
    if os.path.isfile(candidate):
      yield candidate


def _import_names(path: str) -> Set[str]:
  """Every absolute dotted name the file at `path` imports, with `from X import y` as X and X.y;
  relative imports as the .py files they name."""
  with open(path) as f:
    tree = ast.parse(f.read(), path)
  names = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      names.update(alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
      names.add(node.module)
      names.update(f'{node.module}.{alias.name}' for alias in node.names)
    elif isinstance(node, ast.ImportFrom) and node.level:  # from . import x, from .x import y
      folder = os.path.dirname(path)
      for _ in range(node.level - 1):
        folder = os.path.dirname(folder)
      base = os.path.join(folder, *(node.module or '').split('.'))
      for alias in node.names:
        for candidate in (base + '.py', os.path.join(base, alias.name + '.py')):
          if os.path.isfile(candidate):
            names.add(candidate)
  return names


def _imported(path: str, modules_dir: str) -> Set[str]:
  """The files of the `modules` package that the file at `path` imports."""
  found = set()
  for name in _import_names(path):
    parts = name.split('.')
    if parts[0] == PACKAGE and len(parts) >= 2:
      found.update(_module_files(modules_dir, parts[1:]))
  return found


def closure(entries: Iterable[str], modules_dir: str) -> Set[str]:
  """The files `entries` and every file of `modules` they import, directly or not."""
  todo, seen = list(entries), set()
  while todo:
    path = todo.pop()
    if path not in seen:
      seen.add(path)
      todo += _imported(path, modules_dir)
  return seen


def transform_sources(modules_dir: Optional[str] = None) -> Set[str]:
  """preprocessing.py and every file of `modules` it imports, directly or not."""
  modules_dir = modules_dir or MODULES_DIR
  return closure([os.path.join(modules_dir, TRANSFORM_ENTRY)], modules_dir)


def transform_code(modules_dir: Optional[str] = None) -> str:
  modules_dir = modules_dir or MODULES_DIR
  return fingerprint(transform_sources(modules_dir), modules_dir)


def features_code(views: Iterable[Tuple[str, int]]) -> str:
  """The BackboneFeatures step's code (feature_records.py and what it imports), and the
  files of every backbone given as a SavedModel folder (built-in ones are pinned)."""
  key = ContentKey().add(
    fingerprint(closure([os.path.join(MODULES_DIR, FEATURES_ENTRY)], MODULES_DIR), MODULES_DIR)
  )
  for handle, _ in views:
    if handle not in PRETRAINED_BACKBONES and handle != BUILTIN_BACKBONE:
      from modules.training import feature_cache

      key.add(handle).add(feature_cache.backbone_fingerprint(handle))
  return key.hex()


def training_code(modules_dir: Optional[str] = None) -> str:
  """Every .py file of the modules package, sub-packages included: what tuner_fn and run_fn run."""
  modules_dir = modules_dir or MODULES_DIR
  return fingerprint(
    glob.glob(os.path.join(modules_dir, '**', '*.py'), recursive=True), modules_dir
  )


def _local_imports(path: str, roots: Iterable[str]) -> Set[str]:
  """Files under `roots` that the file at `path` imports (`modules` is keyed already)."""
  found = set()
  for name in _import_names(path):
    if name.endswith('.py'):
      found.add(os.path.abspath(name))
      continue
    parts = name.split('.')
    if parts[0] == PACKAGE:
      continue
    for root in roots:
      found.update(os.path.abspath(f) for f in _module_files(root, parts))
  return found


def hypermodel_sources(module_path: str) -> Set[str]:
  """A --hypermodel module's file and the checkout's (or its folder's) files it imports."""
  roots = [PROJECT_ROOT, os.path.dirname(os.path.abspath(module_path))]
  todo, seen = [os.path.abspath(module_path)], set()
  while todo:
    path = todo.pop()
    if path not in seen:
      seen.add(path)
      todo += _local_imports(path, roots)
  return seen


def hypermodel_code(module_path: str) -> str:
  """Fingerprint of a --hypermodel module and what it imports (paths relative to its folder)."""
  return fingerprint(hypermodel_sources(module_path), os.path.dirname(os.path.abspath(module_path)))
