"""The one configuration every runner reads: defaults for paths, gates and options.

Runners fill a `PipelineConfig` from their flags (tfx_pipeline/options.py
makes the flags from its fields); `create_pipeline` reads it. The Vertex AI
runner also fills a `VertexSettings` (tfx_pipeline/vertex/settings.py).
Paths default to folders inside the project checkout and are all overridable.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Optional, Tuple

from modules.module_config import (
  MIN_IMAGE_SIZE,
  PRETRAINED_BACKBONES,
  ModuleConfig,
  native_image_size,
  option,
)

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_DATA_ROOT = os.path.join(PROJECT_ROOT, 'data', 'sample')
DEFAULT_PIPELINE_ROOT = os.path.join(PROJECT_ROOT, 'pipeline_output')
# What the local runner's data check (data_folder/check.py) does with a record
# whose image does not decode: stop the run, or drop it and count it.
BAD_IMAGE_POLICIES = ('fail', 'skip')
# How the local runner runs its Beam steps (tfx_pipeline/local/beam.py).
BEAM_WORKERS = ('auto', 'one', 'threads', 'processes')
# `auto`, by the size of the data's TFRecord files: one worker below the first,
# a thread per core from it, a process per core from the second.
BEAM_THREADS_FROM_MB = 32
BEAM_PROCESSES_FROM_MB = 500


# Adding an option: see `option` in modules/module_config.py (one field, here or in ModuleConfig).
@dataclasses.dataclass(frozen=True)
class PipelineConfig:
  """Everything that decides what the pipeline does, with its defaults."""

  pipeline_name: str = 'flower-tuner'
  data_root: str = option(
    DEFAULT_DATA_ROOT,
    'folder of flower TFRecords (default: the sample in data/sample)',
    runners=('local',),
    path=True,
  )
  pipeline_root: str = option(
    DEFAULT_PIPELINE_ROOT,
    'folder for artifacts, ML Metadata and pushed models (default: %(default)s)',
    runners=('local',),
    path=True,
  )
  module: ModuleConfig = dataclasses.field(default_factory=ModuleConfig)
  tune: bool = option(
    True, 'skip the Tuner: train with the search space defaults or --hparams-from', flag='--no-tune'
  )
  # An earlier Tuner's best_hyperparameters folder, or a best_hyperparameters.txt / JSON file
  # (tfx_pipeline/hparams_file.py), used with tune=False.
  hparams_from: Optional[str] = option(
    None,
    "an earlier Tuner's {storage} best_hyperparameters/<id> folder, the "
    'best_hyperparameters.txt in it, or a JSON file like it (with --no-tune)',
    path=True,
  )
  # Total Trainer steps; None trains `module.epochs` full passes over the data.
  train_steps: Optional[int] = option(
    None, 'total Trainer steps, spread over --epochs (default: full passes)'
  )
  # The Evaluator blesses (and Pusher pushes) a model only at or above this accuracy.
  accuracy_threshold: float = option(
    0.5, 'lowest eval accuracy Evaluator blesses for pushing (default: %(default)s)'
  )
  # ... and only when it is at most this much below the latest blessed model's accuracy.
  max_accuracy_drop: float = option(
    0.0,
    "how far eval accuracy may fall below the latest pushed model's and still be pushed "
    '(default: %(default)s: never push a worse model)',
    metavar='DROP',
  )
  # A full-integer int8 TFLite model pushed beside the SavedModel (tfx_pipeline/tflite_export.py).
  tflite: bool = option(
    True,
    'push the SavedModel alone, without converting it to an int8 TFLite model',
    flag='--no-tflite',
  )
  max_tflite_drop: float = option(
    0.02,
    "push model.tflite only if its accuracy is at most DROP below the SavedModel's on the "
    'evaluated split (default: %(default)s)',
    metavar='DROP',
  )
  # Beam options of every Beam step; empty: the local runner picks them from
  # --beam-workers and the data's size (tfx_pipeline/local/beam.py).
  beam_pipeline_args: Tuple[str, ...] = ()
  beam_workers: str = option(
    'auto',
    'Beam workers of the data check, ImportExampleGen, StatisticsGen, Transform and '
    "Evaluator: 'one' (one core), 'threads' (a thread per core), 'processes' (a process "
    "per core, each importing TensorFlow first), or 'auto' (default, by the size of the "
    f'data: one below {BEAM_THREADS_FROM_MB} MB, threads below {BEAM_PROCESSES_FROM_MB} MB, '
    'processes from there)',
    choices=BEAM_WORKERS,
    runners=('local',),
  )
  enable_cache: bool = option(True, 'rerun every component', flag='--no-cache')
  # Bad input: every record is checked before any component runs (data_folder/check.py).
  bad_images: str = option(
    'fail',
    'records whose image does not decode: fail (default) stops '
    'the run naming them; skip drops them and counts them',
    choices=BAD_IMAGE_POLICIES,
    runners=('local',),
  )
  # Local Tuner: trials run at once, by a keras-tuner chief and this many worker processes.
  parallel_trials: int = option(
    1,
    'run N trials at once, each in its own worker process with '
    'its share of the CPU threads (default: %(default)s)',
    metavar='N',
    runners=('local',),
  )

  def __post_init__(self):
    if self.bad_images not in BAD_IMAGE_POLICIES:
      raise ValueError(
        f'--bad-images {self.bad_images}: choose one of {", ".join(BAD_IMAGE_POLICIES)}.'
      )
    if self.hparams_from and self.tune:
      raise ValueError('--hparams-from trains with saved hyperparameters: add --no-tune.')
    if self.module.warm_start and not self.tune:
      raise ValueError('--warm-start starts a search from earlier trials: drop --no-tune.')
    if not 0.0 <= self.accuracy_threshold <= 1.0:
      raise ValueError(f'accuracy_threshold={self.accuracy_threshold}: use a value in [0, 1].')
    if not 0.0 <= self.max_accuracy_drop <= 1.0:
      raise ValueError(
        f'--max-accuracy-drop {self.max_accuracy_drop}: use a value in [0, 1] (0: no drop).'
      )
    if not 0.0 <= self.max_tflite_drop <= 1.0:
      raise ValueError(f'--max-tflite-drop {self.max_tflite_drop}: use a value in [0, 1].')
    if self.train_steps is not None and self.train_steps < 1:
      raise ValueError(f'train_steps={self.train_steps}: must be at least 1.')
    if self.beam_workers not in BEAM_WORKERS:
      raise ValueError(
        f'--beam-workers {self.beam_workers}: choose one of {", ".join(BEAM_WORKERS)}.'
      )
    if self.parallel_trials < 1:
      raise ValueError(f'--parallel-trials {self.parallel_trials}: must be at least 1.')

  @property
  def metadata_path(self) -> str:
    """The embedded SQLite ML Metadata store of local runs."""
    return os.path.join(self.pipeline_root, 'metadata.sqlite')

  @property
  def serving_model_dir(self) -> str:
    """Where Pusher writes blessed models, one timestamped folder each."""
    return os.path.join(self.pipeline_root, 'serving_model', self.pipeline_name)


def sized_for_search(config: PipelineConfig) -> PipelineConfig:
  """`config` storing images at the largest size a backbone of its search space sees.

  For a run without --image-size: a space that chooses among the
  EfficientNet-Lites, or among image sizes (`image_size`), keeps each image
  once, at the largest of the chosen backbones' own sizes and the declared
  image sizes, and each trial's model resizes it for its own view
  (modules/model/model.py).
  """
  from modules.search import declaration, search_space

  backbones = search_space.declared_values(config.module, 'backbone')
  sizes = [
    native_image_size(b) for b in backbones if isinstance(b, str) and b in PRETRAINED_BACKBONES
  ]
  sizes += [
    s
    for s in search_space.declared_values(config.module, 'image_size')
    if declaration.is_int(s) and s >= MIN_IMAGE_SIZE
  ]
  if not sizes:
    return config
  module = dataclasses.replace(config.module, image_size=max(sizes))
  return dataclasses.replace(config, module=module)
