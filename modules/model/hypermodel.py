"""The hypermodel the Tuner searches and the Trainer trains: the built-in classifier, or yours.

`FlowerHyperModel` is a keras-tuner `HyperModel`. Its `build` makes the
built-in model (modules/model/model.py: a head alone on cached backbone features,
else backbone + head), or calls the user's `--hypermodel MODULE:FUNCTION`
(modules/model/builder.py: the contract, and its checks).
Its `fit` reads what the input pipeline takes from the search space, so every
trial trains with its own `batch_size` and augmentation switches (on cached
features too), then calls `model.fit`.
"""

from __future__ import annotations

import dataclasses

import keras_tuner

from modules.model import model
from modules.model.builder import call_builder, check_model, load_builder
from modules.module_config import ModuleConfig
from modules.training import fine_tuning
from modules.training.augmentation import Augmentation


@dataclasses.dataclass(frozen=True)
class FitSettings:
  batch_size: int
  augment: Augmentation


def fit_settings(hp, config: ModuleConfig) -> FitSettings:
  """The trial's batch size (else --batch-size) and augmentation switches (else off)."""
  return FitSettings(
    batch_size=int(model.optional(hp, 'batch_size', config.batch_size)),
    augment=Augmentation(
      flip=bool(model.optional(hp, 'augment_flip', False)),
      rotation=bool(model.optional(hp, 'augment_rotation', False)),
      zoom=bool(model.optional(hp, 'augment_zoom', False)),
    ),
  )


class FlowerHyperModel(keras_tuner.HyperModel):
  """The built-in model or the user's builder, fitted on `data` with each trial's fit settings."""

  def __init__(self, config: ModuleConfig, data, num_classes: int):
    super().__init__(name='flower_classifier')
    self.config = config
    self.data = data  # A modules.training.training_data.TrainingData.
    self.num_classes = num_classes
    self.builder = load_builder(config.hypermodel) if config.hypermodel else None

  def build(self, hp):
    if self.data.cached_features:
      return model.build_head(hp, self.num_classes, self.data.feature_dim)
    if self.builder is None:
      return model.build_model(hp, self.config, self.num_classes)
    reference, size = self.config.hypermodel, self.config.image_size
    built = call_builder(reference, self.builder, hp, self.num_classes, size)
    check_model(reference, built, self.num_classes, size)
    return built

  def fit(self, hp, model_to_fit, *args, **kwargs):
    """`model.fit` on the batches of this trial's batch size and augmentation.

    Training and validation data come from `data`; `x` / `validation_data`
    given here are ignored. `steps_per_epoch` given here wins (fixed budgets). With
    --fine-tune on the built-in model, the head trains first (modules/training/fine_tuning.py).
    """
    settings = fit_settings(hp, self.config)
    for key in ('x', 'y', 'validation_data', 'batch_size'):
      kwargs.pop(key, None)
    # On cached features: those of this trial's backbone at its image size.
    view = model.backbone_view(hp, self.config)
    steps = kwargs.pop('steps_per_epoch', None)
    epochs, callbacks = kwargs.pop('epochs', 1), list(kwargs.pop('callbacks', None) or [])

    def fit_on(data, fitted, epochs, callbacks, **more):
      return fitted.fit(
        data.train(settings.batch_size, settings.augment, view),
        validation_data=data.eval(settings.batch_size, view),
        steps_per_epoch=steps or data.steps_per_epoch(settings.batch_size, view),
        epochs=epochs,
        callbacks=callbacks,
        **more,
      )

    if not model.fine_tunes(self.config):
      return fit_on(self.data, model_to_fit, epochs, callbacks, **kwargs)
    return fine_tuning.fit(
      model_to_fit,
      lambda fitted, factor: model.compile_model(fitted, hp, factor),
      fit_on,
      self.data,
      epochs,
      callbacks,
      **kwargs,
    )
