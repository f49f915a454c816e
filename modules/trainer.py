"""`run_fn` for the TFX Trainer: trains with the best hyperparameters, calibrates and exports.

Hyperparameters come from the Tuner (or an imported file); with neither, the
search space defaults are used. The model and its fit are the Tuner's
(modules/model/hypermodel.py), so a trial's batch size and augmentation apply here too.
A temperature fitted on the eval split after training (modules/model/calibration.py)
goes into the serving model; the test split stays the Evaluator's alone.
"""

import math
import os

import keras
import keras_tuner
import tensorflow_transform as tft
from absl import logging
from tfx.components.trainer.fn_args_utils import FnArgs

from modules import labels
from modules.backbones import backbone
from modules.model import calibration, hypermodel, model, serving
from modules.module_config import ModuleConfig
from modules.runtime import gcs, stop, strategy
from modules.search import search_space
from modules.training import training_data


def hyperparameters_from(fn_args: FnArgs) -> keras_tuner.HyperParameters:
  """The Tuner's best hyperparameters, or the search space defaults without a Tuner."""
  if fn_args.hyperparameters:
    return keras_tuner.HyperParameters.from_config(fn_args.hyperparameters)
  logging.info('No tuned hyperparameters: training with the search space defaults.')
  return search_space.from_custom_config(fn_args.custom_config).hyperparameters()


def run_fn(fn_args: FnArgs) -> None:
  """The Trainer component's entry point."""
  config = ModuleConfig.from_custom_config(fn_args.custom_config)
  keras.utils.set_random_seed(config.seed)
  tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
  class_names = labels.class_names(tf_transform_output)
  hp = hyperparameters_from(fn_args)
  logging.info('Training with %s', search_space.public_values(hp.values))
  view = model.backbone_view(hp, config)  # The backbone and the image size it sees.
  data = training_data.prepare(fn_args, config, tf_transform_output, view=view)
  trained = hypermodel.FlowerHyperModel(config, data, len(class_names))
  # Variables made in the scope live on the TPU cores / GPUs the job has.
  with strategy.choose().scope():
    classifier = trained.build(hp)

  trained.fit(
    hp,
    classifier,
    epochs=config.epochs,
    # A fixed step budget (TrainArgs.num_steps) spread over the epochs; None: the data's
    # own epoch (training_data.epoch_steps).
    steps_per_epoch=math.ceil(fn_args.train_steps / config.epochs) if fn_args.train_steps else None,
    verbose=2,
    callbacks=_callbacks(fn_args),
  )
  calibrated = calibration.fit(
    classifier, data.eval(hypermodel.fit_settings(hp, config).batch_size, view), split='eval'
  )
  logging.info('Calibration: %s', calibrated.describe())
  stop.check()  # The export has no batches to check between.
  if data.cached_features:
    # One serving model that still takes raw images: backbone + the trained head.
    classifier = model.attach(
      backbone.build_backbone(view[0], fine_tune=False), classifier, config.image_size, view[1]
    )
  serving.export(
    classifier,
    tf_transform_output,
    class_names,
    fn_args.serving_model_dir,
    config.image_size,
    calibrated,
  )
  # A Ctrl-C during the export can be lost in its finalizers (modules/runtime/stop.py):
  # the run was asked to stop, so the Trainer does not report a model done.
  stop.check()


def _callbacks(fn_args: FnArgs) -> list:
  """A checkpoint each epoch, TensorBoard logs, and a stop at the next batch on Ctrl-C."""
  checkpoints = os.path.join(
    gcs.local_path(fn_args.model_run_dir), 'checkpoints', 'epoch-{epoch:03d}.weights.h5'
  )
  return [
    keras.callbacks.ModelCheckpoint(checkpoints, save_weights_only=True),
    keras.callbacks.TensorBoard(log_dir=fn_args.model_run_dir),
    stop.keras_callback(),
  ]
