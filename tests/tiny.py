"""The tests' one tiny configuration: the real defaults, made small enough to run in a minute.

Every test that runs the pipeline, the Tuner or the Trainer starts from
`MODULE` and changes only what it is about: `module(tuner='random')` in
process, `flags(tuner='random')` for run_local.py, `pipeline(...)` for a whole
PipelineConfig. Hyperband with these sizes runs 5 trials, 7 epochs in all.
"""

import dataclasses
from typing import List

from modules.module_config import ModuleConfig
from tfx_pipeline import options
from tfx_pipeline.config import PipelineConfig

MODULE = dataclasses.replace(
  ModuleConfig(), image_size=32, max_trials=2, max_epochs=2, factor=2, epochs=2, batch_size=8
)
# The five flower classes of the sample, of the tiny data and of the real shard.
CLASSES = {'daisy', 'dandelion', 'roses', 'sunflowers', 'tulips'}


def module(**overrides) -> ModuleConfig:
  """MODULE with `overrides`."""
  return dataclasses.replace(MODULE, **overrides)


def flags(tflite: bool = False, **overrides) -> List[str]:
  """run_local.py's flags for `module(**overrides)` (only those that differ from the defaults).

  Without `tflite`, --no-tflite: converting and checking the int8 model takes
  ~20 s a run, and the runs that are about it say so.
  """
  return options.to_flags(module(**overrides), 'local') + ([] if tflite else ['--no-tflite'])


def pipeline(data_root: str, pipeline_root: str, **module_overrides) -> PipelineConfig:
  """A run of `module(**module_overrides)` that pushes any model (no accuracy floor)."""
  return PipelineConfig(
    data_root=data_root,
    pipeline_root=str(pipeline_root),
    module=module(**module_overrides),
    accuracy_threshold=0.0,
    tflite=False,
  )
