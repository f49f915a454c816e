"""The local Tuner step with parallel trials: a keras-tuner chief plus N worker processes.

`create_pipeline` uses `ParallelTuner` for local runs (`run_local.py
--parallel-trials N`). It is TFX's Tuner with its own executor: with
`TuneArgs(num_parallel_trials=1)` (or none) the executor does exactly what TFX's
stock one does; with N > 1 it runs keras-tuner's distributed search on this
machine, the protocol TFX's Vertex Tuner uses across machines: the chief's
oracle (`tfx_pipeline.parallel.chief`) on loopback in this process, and N
workers (`tfx_pipeline.parallel.pool`) that each call the same `tuner_fn` and
`search(**fit_kwargs)` on the shared trial folder. A worker that dies mid-trial
is replaced; its trial is rerun up to `chief.MAX_TRIAL_RETRIES` times, then
ended as FAILED, so the search always ends. Then `best_hyperparameters` is written the
way TFX's executor writes it.
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, List

from tfx import types
from tfx.components.trainer import fn_args_utils
from tfx.components.tuner import executor as tuner_executor
from tfx.components.tuner.component import Tuner
from tfx.components.util import udf_utils
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils

from tfx_pipeline import features_input
from tfx_pipeline.parallel import chief


def _chief_tuner(input_dict, exec_properties, working_dir: str):
  """The tuner `tuner_fn` builds, in this process: its oracle is the one the chief serves."""
  fn_args = fn_args_utils.get_common_fn_args(input_dict, exec_properties, working_dir)
  tuner = udf_utils.get_fn(exec_properties, 'tuner_fn')(fn_args).tuner
  oracle = tuner.oracle
  # keras-tuner reloads a project only when this tuner id's own file exists;
  # in a parallel search the workers write theirs, and the oracle's file is
  # what holds the trials.
  if not oracle.trials and os.path.exists(oracle._get_oracle_fname()):
    oracle.reload()
  oracle.verbose = 0  # The workers print each trial.
  return tuner


def _write_spec(path: str, input_dict, exec_properties, working_dir: str) -> str:
  with open(path, 'w') as f:
    json.dump(
      {
        'input_dict': artifact_utils.jsonify_artifact_dict(input_dict),
        'exec_properties': exec_properties,
        'working_dir': working_dir,
      },
      f,
    )
  return path


class Executor(base_executor.BaseExecutor):
  """TFX's Tuner executor, with TuneArgs.num_parallel_trials workers on this machine."""

  def Do(
    self,
    input_dict: Dict[str, List[types.Artifact]],
    output_dict: Dict[str, List[types.Artifact]],
    exec_properties: Dict[str, Any],
  ) -> None:
    tune_args = tuner_executor.get_tune_args(exec_properties)
    workers = tune_args.num_parallel_trials if tune_args else 1
    working_dir = self._get_tmp_dir()
    if workers <= 1:
      tuner = tuner_executor.search(input_dict, exec_properties, working_dir)
    else:
      tuner = _chief_tuner(input_dict, exec_properties, working_dir)
      spec = _write_spec(
        os.path.join(working_dir, 'worker_spec.json'), input_dict, exec_properties, working_dir
      )
      chief.parallel_search(tuner, spec, working_dir, workers)
    tuner_executor.write_best_hyperparameters(tuner, output_dict)


class FeaturesExecutor(features_input.FeaturesIntoConfig, Executor):
  """`Executor`, with the BackboneFeatures artifact's folder in `tuner_fn`'s custom_config."""


# TFX's Tuner component, run by `FeaturesExecutor` (parallel trials through
# `tune_args`), that also takes the BackboneFeatures artifact as `features`.
ParallelTuner = features_input.with_features(Tuner, FeaturesExecutor, name='ParallelTuner')
