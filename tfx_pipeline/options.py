"""Command-line options for the search, the model and training, shared by every runner."""
from __future__ import annotations

import argparse

from modules.module_config import TUNERS, ModuleConfig
from tfx_pipeline.config import PipelineConfig

_DEFAULTS = PipelineConfig()
_MODULE = ModuleConfig()


def add_search_and_training(p, *, backbone_help: str, hparams_help: str) -> None:
  """Adds the flags every runner takes to a parser or argument group."""
  m = _MODULE
  p.add_argument('--tuner', choices=TUNERS, default=m.tuner,
                 help='search algorithm (default: %(default)s)')
  p.add_argument('--max-trials', type=int, default=m.max_trials,
                 help='trials for bayesian/random search (default: %(default)s)')
  p.add_argument('--max-epochs', type=int, default=m.max_epochs,
                 help='epochs per trial; for hyperband the most a trial gets (default: %(default)s)')
  p.add_argument('--factor', type=int, default=m.factor,
                 help='hyperband reduction factor (default: %(default)s)')
  p.add_argument('--epochs', type=int, default=m.epochs,
                 help='Trainer epochs with the best hyperparameters (default: %(default)s)')
  p.add_argument('--train-steps', type=int, default=None,
                 help='total Trainer steps, spread over --epochs (default: full passes)')
  p.add_argument('--batch-size', type=int, default=m.batch_size, help='(default: %(default)s)')
  p.add_argument('--image-size', type=int, default=m.image_size,
                 help='square size images are resized to (default: %(default)s)')
  p.add_argument('--backbone', default=m.backbone, help=backbone_help)
  p.add_argument('--fine-tune', action='store_true',
                 help='train the SavedModel backbone too (default: frozen)')
  p.add_argument('--no-feature-cache', action='store_true',
                 help='with a frozen SavedModel backbone, run it in every epoch of every trial '
                      'instead of training the head on its features computed once')
  p.add_argument('--no-tune', action='store_true',
                 help='skip the Tuner: train with the search space defaults or --hparams-from')
  p.add_argument('--hparams-from', default=None, help=hparams_help)
  p.add_argument('--accuracy-threshold', type=float, default=_DEFAULTS.accuracy_threshold,
                 help='lowest eval accuracy Evaluator blesses for pushing (default: %(default)s)')
  p.add_argument('--seed', type=int, default=m.seed, help='(default: %(default)s)')
  p.add_argument('--no-cache', action='store_true', help='rerun every component')


def module_config(args: argparse.Namespace, **extra) -> ModuleConfig:
  """The ModuleConfig the flags describe; `extra` sets runner-specific fields."""
  return ModuleConfig(
      image_size=args.image_size, backbone=args.backbone, fine_tune=args.fine_tune,
      tuner=args.tuner, max_trials=args.max_trials, max_epochs=args.max_epochs,
      factor=args.factor, epochs=args.epochs, batch_size=args.batch_size, seed=args.seed,
      feature_cache=not args.no_feature_cache, **extra)


def pipeline_fields(args: argparse.Namespace) -> dict:
  """PipelineConfig fields the shared flags set (paths are each runner's own)."""
  return dict(tune=not args.no_tune, train_steps=args.train_steps,
              accuracy_threshold=args.accuracy_threshold, enable_cache=not args.no_cache)
