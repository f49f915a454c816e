"""Checks a local run's configuration before anything is written: each problem is one line.

`check` reads the configuration's folders, data layout, --hparams-from and
--hypermodel, and returns what the run needs of them (`Checked`); it writes
nothing. run_local.py calls it before it takes the pipeline root and opens the
run's log, and hands the result to `runner.run`, which calls it itself only
when called without one (tests, the benchmark).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Tuple

from tfx_pipeline.config import PipelineConfig


@dataclasses.dataclass(frozen=True)
class Checked:
  """A configuration that passed: its data folder's split layout and what is searched."""

  layout: Any  # data_folder.layout.DataLayout
  search_line: str  # The console line that says what is searched.
  warm_line: str = ''  # With --warm-start: which earlier trials the search learns from.


def check(config: PipelineConfig) -> Checked:
  """Raises one of `usage_errors()` for settings or input the run cannot use."""
  from tfx_pipeline.data_folder import layout as data_layout

  check_paths(config)
  from tfx_pipeline import warm_search

  layout = data_layout.find_splits(config.data_root)
  search_line = check_search(config.module)
  warm = warm_search.load(config) if config.tune else None
  return Checked(layout=layout, search_line=search_line, warm_line=warm.line if warm else '')


def check_paths(config: PipelineConfig) -> None:
  """Raises cli_paths.PathError for a pipeline root or --hparams-from that cannot be used."""
  from tfx_pipeline import cli_paths, hparams_file

  if config.hparams_from:
    hparams_file.find(config.hparams_from)
  cli_paths.writable_folder('--pipeline-root', config.pipeline_root)


def check_search(module) -> str:
  """Loads the --hypermodel and checks the search space against the model.

  Returns the console line that says what is searched; raises SearchSpaceError
  or HypermodelError, each one line.
  """
  from modules.model import builder, space_check
  from modules.search import search_space

  if module.hypermodel:
    builder.load_builder(module.hypermodel)
  space, fixed = search_space.for_module(module)
  space_check.check_space(space, module)
  if space.spec:
    what = f'{space.source}: {space.describe()}'
  else:
    what = f'the hyperparameters {module.hypermodel} declares'
  if fixed:
    what += f' ({", ".join(fixed)} fixed at the built-in defaults)'
  return f'search space: {what}'


def usage_errors() -> Tuple[type, ...]:
  """The errors of bad settings or input: found before any component runs, each one line."""
  from modules.backbones.backbone import BackboneError
  from modules.model.builder import HypermodelError
  from modules.search.search_space import SearchSpaceError
  from tfx_pipeline.cli_paths import PathError
  from tfx_pipeline.data_folder.layout import DataLayoutError
  from tfx_pipeline.local.run_lock import RunLockError
  from tfx_pipeline.warm_search import WarmStartError

  return (
    DataLayoutError,
    PathError,
    BackboneError,
    SearchSpaceError,
    HypermodelError,
    RunLockError,
    WarmStartError,
  )
