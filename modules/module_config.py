"""What the pipeline hands to the user code through `custom_config`: options and folders.

`tfx_pipeline.pipeline` serialises a `ModuleConfig` (the options) and the run's
`RunPaths` (folders outside any one component's output) into each component's
`custom_config`; `preprocessing_fn`, `tuner_fn` and `run_fn` read them back
here, so both sides share one definition of every option and its default.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Optional, Tuple

from modules.objectives import check as check_objectives

TUNERS = ('hyperband', 'bayesian', 'random', 'tpe')
# --warm-start: the tuners with a model of the scores to teach earlier trials to
# (Hyperband's brackets and random draws learn from nothing).
WARM_START_TUNERS = ('bayesian', 'tpe')
# --prune: how a trial is judged at the end of each epoch (modules/tuning/pruning.py).
PRUNERS = ('median',)
# The small from-scratch CNN, and the ImageNet-pretrained default
# (modules/backbones/efficientnet_lite.py).
BUILTIN_BACKBONE = 'cnn'
PRETRAINED_BACKBONE = 'efficientnet-lite0'
# The pretrained family and the image size each was trained at: a run's
# --image-size unless the flag says otherwise.
PRETRAINED_BACKBONES = {
  'efficientnet-lite0': 224,
  'efficientnet-lite1': 240,
  'efficientnet-lite2': 260,
}
# Every other backbone's (the CNN's, a TF-Hub handle's, a SavedModel's).
DEFAULT_IMAGE_SIZE = 224
# The smallest image size, stored (--image-size) or searched (a space's `image_size`).
MIN_IMAGE_SIZE = 32


def native_image_size(backbone: str) -> int:
  """The image size `backbone` sees without --image-size."""
  return PRETRAINED_BACKBONES.get(backbone, DEFAULT_IMAGE_SIZE)


# To add an option, add a field with `option(default, help)` to ModuleConfig
# (what the user code reads) or to tfx_pipeline.config.PipelineConfig (what
# create_pipeline reads); that is all. Both runners' flags, the configuration
# they build, every component's custom_config, the search's resume key and the
# code fingerprint follow from the field (tfx_pipeline/options.py). Keywords,
# where the defaults do not fit:
#   flag='--name'         another flag name; a bool that defaults to True needs '--no-...'
#   choices=, metavar=    as argparse's
#   runners=('local',)    only run_local.py takes it (default: both runners)
#   path=True             a path; run_local.py makes it absolute
#   in_search_key=False   changing it resumes the search instead of starting anew
#   transform=True        preprocessing_fn reads it (part of Transform's cache key)
#   prefix='tuner'        on a nested dataclass field: its fields' flags are --tuner-...,
#                         and '{what}' in their help reads this field's help
#                         (tfx_pipeline/vertex/settings.py's machines)
# {storage} in a help text reads 'local' or 'gs://' by runner; a field without
# help has no flag.
def option(default: Any, help: str, **metadata: Any) -> Any:
  """A dataclass field with its default, command-line help and the keywords above."""
  return dataclasses.field(default=default, metadata={'help': help, **metadata})


@dataclasses.dataclass(frozen=True)
class ModuleConfig:
  """Model, search and training options (defaults are the documented ones)."""

  # None: the backbone's native size (resolved on construction, so readers see an int).
  image_size: Optional[int] = option(
    None,
    "square size images are resized to (default: the backbone's own: 224, 240 for "
    'efficientnet-lite1, 260 for efficientnet-lite2)',
    transform=True,
  )
  backbone: str = option(
    PRETRAINED_BACKBONE,
    "'efficientnet-lite0' (default), 'efficientnet-lite1' or 'efficientnet-lite2' "
    '(ImageNet-pretrained, no download; larger is more accurate and slower), '
    "'cnn' (a small CNN trained from scratch), a TF-Hub handle, or a {storage} SavedModel path",
  )
  fine_tune: bool = option(False, 'train the SavedModel backbone too (default: frozen)')
  tuner: str = option(
    'hyperband',
    "search algorithm: keras-tuner's hyperband, bayesian or random, or tpe (Optuna's TPE "
    'sampler) (default: %(default)s)',
    choices=TUNERS,
  )
  max_trials: int = option(8, 'trials for bayesian/random/tpe search (default: %(default)s)')
  max_epochs: int = option(
    4, 'epochs per trial; for hyperband the most a trial gets (default: %(default)s)'
  )
  factor: int = option(3, 'hyperband reduction factor (default: %(default)s)')
  # The space's contents, not its path, key the search (modules/search/search_space.py).
  search_space: Optional[str] = option(
    None,
    'YAML or JSON file declaring the hyperparameters to search (default: '
    'modules/search_space.yaml; with --hypermodel, those its builder declares)',
    path=True,
    metavar='FILE',
    in_search_key=False,
  )
  # A user's keras-tuner model builder instead of the built-in model (modules/model/builder.py).
  hypermodel: Optional[str] = option(
    None,
    'your own keras-tuner model builder, MODULE:FUNCTION (a dotted module or a .py file): '
    'hp -> compiled keras.Model taking [N, size, size, 3] images in [0, 1] (default: the '
    'built-in model)',
    metavar='MODULE:FUNCTION',
  )
  prune: Optional[str] = option(
    None,
    'median: stop a trial after an epoch where its best val_accuracy so far is below the '
    'median of completed trials at that epoch (random, bayesian and tpe; default: no pruning)',
    choices=PRUNERS,
  )
  # An earlier search's completed trials that fit this space teach the oracle
  # (modules/tuning/warm_trials.py); the runner reads them (tfx_pipeline/warm_search.py)
  # and they travel in custom_config, so changing the path alone resumes the search.
  warm_start: Optional[str] = option(
    None,
    "start the search's model from an earlier search's completed trials that fit this "
    'search space: its search folder, or a pipeline root (its latest search); '
    'bayesian and tpe (default: none)',
    path=True,
    metavar='PATH',
    in_search_key=False,
  )
  # More than one: a multi-objective TPE search (modules/objectives.py, modules/tuning/pareto.py).
  objectives: str = option(
    'val_accuracy',
    'what trials are scored on: val_accuracy, and latency_ms (single-thread batch-1) and/or '
    'model_mb for a Pareto front; more than one needs --tuner tpe (default: %(default)s)',
  )
  # Which trial of the front the Trainer trains: changing them keeps the search.
  max_latency_ms: Optional[float] = option(
    None,
    'train the most accurate trial of the front whose latency_ms is MS or less (default: none)',
    metavar='MS',
    in_search_key=False,
  )
  max_model_mb: Optional[float] = option(
    None,
    'train the most accurate trial of the front whose model_mb is MB or less (default: none)',
    metavar='MB',
    in_search_key=False,
  )
  prune_warmup: int = option(
    3, 'completed trials before --prune stops any (default: %(default)s)', metavar='N'
  )
  # With cached backbone features, a search that turns augmentation on trains the
  # head on the features of this many augmented copies of each training image.
  augment_copies: int = option(
    4,
    'augmented copies of each training image whose backbone features are cached when '
    'a trial turns augmentation on (default: %(default)s)',
    metavar='N',
  )
  early_stopping_patience: int = 2
  epochs: int = option(
    8, 'Trainer epochs with the best hyperparameters (default: %(default)s)', in_search_key=False
  )
  batch_size: int = option(32, '(default: %(default)s)')
  # One meaning for an epoch on every path (modules/training/training_data.py).
  steps_per_epoch: Optional[int] = option(
    None,
    'optimizer steps in an epoch, on cached features and images alike (default: one pass '
    'over the train split, at least 50 steps)',
    metavar='N',
  )
  seed: int = option(42, '(default: %(default)s)')
  # The Tuner starts no new trial after this many minutes of this run (None: no limit);
  # a rerun with more time resumes the search.
  tuning_budget_minutes: Optional[float] = option(
    None,
    'start no new trial after MINUTES of tuning and keep the best so far (default: no '
    'limit); a rerun resumes the search',
    flag='--tuning-budget',
    metavar='MINUTES',
    runners=('local',),
    in_search_key=False,
  )
  # A frozen SavedModel backbone: compute its features once per split and
  # train only the head on them (modules/training/feature_cache.py).
  feature_cache: bool = option(
    True,
    'with a frozen SavedModel backbone, run it in every epoch of every trial instead of '
    'training the head on its features computed once',
    flag='--no-feature-cache',
  )

  def __post_init__(self):
    if self.image_size is None:
      object.__setattr__(self, 'image_size', native_image_size(self.backbone))
    if self.tuner not in TUNERS:
      raise ValueError(f'tuner={self.tuner!r}: choose one of {", ".join(TUNERS)}.')
    if self.image_size < MIN_IMAGE_SIZE:
      raise ValueError(f'image_size={self.image_size}: use {MIN_IMAGE_SIZE} or more pixels.')
    for name in ('max_trials', 'max_epochs', 'epochs', 'batch_size'):
      if getattr(self, name) < 1:
        raise ValueError(f'{name}={getattr(self, name)}: must be at least 1.')
    if self.steps_per_epoch is not None and self.steps_per_epoch < 1:
      raise ValueError(f'steps_per_epoch={self.steps_per_epoch}: must be at least 1.')
    if self.tuning_budget_minutes is not None and self.tuning_budget_minutes < 0:
      raise ValueError(f'tuning_budget_minutes={self.tuning_budget_minutes}: must be 0 or more.')
    if self.factor < 2:
      raise ValueError(f'factor={self.factor}: Hyperband needs a factor of 2 or more.')
    if self.prune not in (None, *PRUNERS):
      raise ValueError(f'prune={self.prune!r}: choose one of {", ".join(PRUNERS)}.')
    if self.prune and self.tuner == 'hyperband':
      raise ValueError(
        f'--prune {self.prune} works with --tuner random, bayesian or tpe: Hyperband stops '
        'trials early by its own schedule.'
      )
    if self.warm_start and self.tuner not in WARM_START_TUNERS:
      raise ValueError(
        f'--warm-start works with --tuner {" or ".join(WARM_START_TUNERS)}: '
        f"{self.tuner}'s {'brackets' if self.tuner == 'hyperband' else 'random draws'} "
        'have no model to learn from earlier trials.'
      )
    limits = {'latency_ms': self.max_latency_ms, 'model_mb': self.max_model_mb}
    check_objectives(self.objectives, self.tuner, limits, bool(self.warm_start))
    if self.prune_warmup < 0:
      raise ValueError(f'prune_warmup={self.prune_warmup}: must be 0 or more.')
    if self.augment_copies < 1:
      raise ValueError(f'augment_copies={self.augment_copies}: must be at least 1.')
    if self.hypermodel is not None and not _is_builder_reference(self.hypermodel):
      raise ValueError(
        f'--hypermodel {self.hypermodel}: expected MODULE:FUNCTION, e.g. '
        'examples.flower_builder:model_builder or path/to/my_module.py:model_builder.'
      )

  def to_custom_config(self) -> dict[str, Any]:
    return dataclasses.asdict(self)

  def transform_custom_config(self) -> dict[str, Any]:
    """Only what preprocessing_fn reads, so search options leave Transform's cache alone."""
    return self._options_where('transform', False)

  def search_options(self) -> dict[str, Any]:
    """The options that shape what the search finds: changing one starts a fresh search."""
    return self._options_where('in_search_key', True)

  def _options_where(self, key: str, default: bool) -> dict[str, Any]:
    return {
      f.name: getattr(self, f.name)
      for f in dataclasses.fields(self)
      if f.metadata.get(key, default)
    }

  @classmethod
  def from_custom_config(cls, custom_config: Optional[Mapping[str, Any]]) -> 'ModuleConfig':
    """Reads the options back, ignoring keys other components added."""
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in (custom_config or {}).items() if k in names})


def split_reference(reference: str) -> Tuple[str, str]:
  """('examples.flower_builder', 'model_builder') from 'examples.flower_builder:model_builder'.

  The one reading of a --hypermodel MODULE:FUNCTION; the module may be a .py path.
  """
  module, _, function = reference.rpartition(':')
  return module, function


def _is_builder_reference(value: str) -> bool:
  module, function = split_reference(value)
  return bool(module) and function.isidentifier()


# custom_config key of the RunPaths.
PATHS_KEY = 'paths'


@dataclasses.dataclass(frozen=True)
class RunPaths:
  """Folders a run keeps beyond one component's output; None where the pipeline gives none."""

  # Backbone features the Tuner computes and the Trainer reuses (modules/training/feature_cache.py);
  # None: the component's working dir, for one run.
  feature_cache_dir: Optional[str] = None
  # Local Tuner: every search's keras-tuner state, so a killed search resumes
  # (modules/tuning/state.py); None: the Tuner's working dir.
  tuning_dir: Optional[str] = None
  # Vertex AI Tuner: the folder that every tuning machine of a parallel search
  # shares its trials and checkpoints in (modules/tuner.py).
  shared_trials_dir: Optional[str] = None

  def to_custom_config(self) -> dict[str, Any]:
    return {PATHS_KEY: dataclasses.asdict(self)}

  @classmethod
  def from_custom_config(cls, custom_config: Optional[Mapping[str, Any]]) -> 'RunPaths':
    return cls(**(custom_config or {}).get(PATHS_KEY, {}))
