"""What the pipeline hands to the user code through `custom_config`: options and folders.

`tfx_pipeline.pipeline` serialises a `ModuleConfig` (the options) and the run's
`RunPaths` (folders outside any one component's output) into each component's
`custom_config`; `preprocessing_fn`, `tuner_fn` and `run_fn` read them back
here, so both sides share one definition of every option and its default.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Optional

TUNERS = ('hyperband', 'bayesian', 'random')
BUILTIN_BACKBONE = 'cnn'


@dataclasses.dataclass(frozen=True)
class ModuleConfig:
  """Model, search and training options (defaults are the documented ones)."""
  image_size: int = 224
  backbone: str = BUILTIN_BACKBONE  # 'cnn', a TF-Hub handle, or a SavedModel path.
  fine_tune: bool = False
  tuner: str = 'hyperband'
  max_trials: int = 8  # bayesian / random only; Hyperband derives its own count.
  max_epochs: int = 4  # epochs per trial (Hyperband: the most any trial gets).
  factor: int = 3  # Hyperband's reduction factor.
  early_stopping_patience: int = 2
  epochs: int = 8  # Trainer epochs.
  batch_size: int = 32
  seed: int = 42
  # Tuner: start no new trial after this many minutes of this run (None: no limit).
  tuning_budget_minutes: Optional[float] = None
  # A frozen SavedModel backbone: compute its features once per split and
  # train only the head on them (modules/feature_cache.py).
  feature_cache: bool = True

  def __post_init__(self):
    if self.tuner not in TUNERS:
      raise ValueError(f'tuner={self.tuner!r}: choose one of {", ".join(TUNERS)}.')
    if self.image_size < 32:
      raise ValueError(f'image_size={self.image_size}: use 32 or more pixels.')
    for name in ('max_trials', 'max_epochs', 'epochs', 'batch_size'):
      if getattr(self, name) < 1:
        raise ValueError(f'{name}={getattr(self, name)}: must be at least 1.')
    if self.tuning_budget_minutes is not None and self.tuning_budget_minutes < 0:
      raise ValueError(f'tuning_budget_minutes={self.tuning_budget_minutes}: must be 0 or more.')
    if self.factor < 2:
      raise ValueError(f'factor={self.factor}: Hyperband needs a factor of 2 or more.')

  def to_custom_config(self) -> dict[str, Any]:
    return dataclasses.asdict(self)

  def transform_custom_config(self) -> dict[str, Any]:
    """Only what preprocessing_fn reads, so search options leave Transform's cache alone."""
    return {'image_size': self.image_size}

  @classmethod
  def from_custom_config(cls, custom_config: Optional[Mapping[str, Any]]) -> 'ModuleConfig':
    """Reads the options back, ignoring keys other components added."""
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in (custom_config or {}).items() if k in names})


# custom_config key of the RunPaths.
PATHS_KEY = 'paths'


@dataclasses.dataclass(frozen=True)
class RunPaths:
  """Folders a run keeps beyond one component's output; None where the pipeline gives none."""
  # Backbone features the Tuner computes and the Trainer reuses (modules/feature_cache.py);
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
