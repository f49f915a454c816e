"""`create_pipeline`: the flower tuner TFX pipeline, shared by every runner.

ImportExampleGen -> StatisticsGen -> SchemaGen -> ExampleValidator -> Transform
-> [BackboneFeatures, for a head on a frozen backbone] -> Tuner -> Trainer -> Evaluator
-> TFLiteExport -> Pusher. The user code is passed by dotted path, so no module wheel is
built and the component cache keys on inputs only.
With `vertex` settings, the Tuner and Trainer are TFX's Google Cloud flavours,
which run `tuner_fn` / `run_fn` as Vertex AI custom jobs.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Optional

from ml_metadata.proto import metadata_store_pb2
from tfx import components as tfx_components
from tfx.dsl.components.common.importer import Importer
from tfx.orchestration.pipeline import Pipeline
from tfx.proto import pusher_pb2, trainer_pb2, transform_pb2, tuner_pb2
from tfx.types import standard_artifacts

from modules.module_config import RunPaths
from modules.search import search_space
from modules.training import feature_cache
from modules.tuning import state as tuning_state
from tfx_pipeline import backbone_features, blessing, code_version, features_input, warm_search
from tfx_pipeline.backbone_features import BackboneFeatures
from tfx_pipeline.config import PipelineConfig
from tfx_pipeline.data_folder import layout as data_layout
from tfx_pipeline.parallel.component import ParallelTuner
from tfx_pipeline.tflite_export import TFLiteExport
from tfx_pipeline.vertex.settings import VertexSettings

PREPROCESSING_FN = 'modules.preprocessing.preprocessing_fn'
TUNER_FN = 'modules.tuner.tuner_fn'
RUN_FN = 'modules.trainer.run_fn'


def create_pipeline(
  config: PipelineConfig,
  *,
  vertex: Optional[VertexSettings] = None,
  layout: Optional[data_layout.DataLayout] = None,
  metadata_connection_config: Optional[metadata_store_pb2.ConnectionConfig] = None,
) -> Pipeline:
  """The pipeline `config` describes. Raises data_layout.DataLayoutError for unusable data.

  `vertex` runs the Tuner and Trainer as Vertex AI custom jobs; `layout` gives
  the splits of a `data_root` already resolved, or that cannot be listed here
  (gs://); `metadata_connection_config` is the ML Metadata store of local runs.
  """
  layout = layout or data_layout.find_splits(config.data_root)
  user_code = _UserCode(config)
  example_gen = _example_gen(config.data_root, layout)
  statistics_gen = tfx_components.StatisticsGen(examples=example_gen.outputs['examples'])
  schema_gen = _schema_gen(statistics_gen)
  example_validator = _example_validator(statistics_gen, schema_gen)
  transform = _transform(example_gen, schema_gen, config)
  features, inputs = _features(transform, config)
  tuner = _tuner(config, inputs, user_code, vertex) if config.tune else None
  importer = _hparams_importer(config.hparams_from) if config.hparams_from else None
  trainer = _trainer(config, inputs, tuner or importer, user_code, vertex)
  # The model the latest blessing was for: the Evaluator's baseline (none on the first run).
  baseline = blessing.latest_blessed_model()
  evaluator = _evaluator(example_gen, trainer, baseline, config, layout.evaluated_split)
  tflite = _tflite(example_gen, transform, trainer, config, layout.evaluated_split)
  pusher = _pusher(tflite or trainer, evaluator, config.serving_model_dir)
  components = (example_gen, statistics_gen, schema_gen, example_validator, transform, features)
  components += (tuner, importer, trainer, baseline, evaluator, tflite, pusher)
  return Pipeline(
    pipeline_name=config.pipeline_name,
    pipeline_root=config.pipeline_root,
    components=[c for c in components if c is not None],
    enable_cache=config.enable_cache,
    metadata_connection_config=metadata_connection_config,
    beam_pipeline_args=list(config.beam_pipeline_args),
  )


class _UserCode:
  """What tuner_fn and run_fn get in custom_config: options, search space, folders, code.

  The space's checked contents and --warm-start's trials travel in it (not a path): they key the
  Tuner's and Trainer's cache, and jobs elsewhere (Vertex AI) read no local file."""

  def __init__(self, config: PipelineConfig):
    space, _ = search_space.for_module(config.module)
    self._options = {
      **config.module.to_custom_config(),
      'code': code_version.training_code(),
      search_space.CUSTOM_CONFIG_KEY: search_space.spec_json(space),
      **warm_search.custom_config(config),
    }
    if config.module.hypermodel:
      self._options[tuning_state.MODEL_CODE_KEY] = code_version.hypermodel_code(
        hypermodel_module_file(config.module.hypermodel)
      )
    # Backbone features the Tuner computes, the Trainer reuses (and later runs).
    self._paths = RunPaths(feature_cache_dir=feature_cache.base_dir(config.pipeline_root))

  def custom_config(self, extra: Optional[dict] = None, **paths: str) -> dict:
    """The custom_config, with more `paths` (RunPaths fields) and `extra` entries."""
    return {
      **self._options,
      **dataclasses.replace(self._paths, **paths).to_custom_config(),
      **(extra or {}),
    }


def hypermodel_module_file(reference: str) -> str:
  """The file of a --hypermodel module; HypermodelError (one line) if it cannot be found."""
  from modules.model import builder

  path = builder.module_file(reference)
  if path is None:
    builder.load_builder(reference)  # Says why, in one line.
    raise builder.HypermodelError(f'--hypermodel {reference}: cannot find its module file.')
  return path


def _example_gen(data_root: str, layout: data_layout.DataLayout):
  return tfx_components.ImportExampleGen(
    input_base=data_root, input_config=layout.input_config, output_config=layout.output_config
  )


def _schema_gen(statistics_gen):
  return tfx_components.SchemaGen(
    statistics=statistics_gen.outputs['statistics'], infer_feature_shape=True
  )


def _example_validator(statistics_gen, schema_gen):
  return tfx_components.ExampleValidator(
    statistics=statistics_gen.outputs['statistics'], schema=schema_gen.outputs['schema']
  )


def _transform(example_gen, schema_gen, config: PipelineConfig):
  return tfx_components.Transform(
    examples=example_gen.outputs['examples'],
    schema=schema_gen.outputs['schema'],
    preprocessing_fn=PREPROCESSING_FN,
    custom_config={
      **config.module.transform_custom_config(),
      'code': code_version.transform_code(),
    },
    # Statistics over transformed images would profile every pixel of every image
    # (224*224*3 features) and took ~40% of Transform's time; StatisticsGen
    # already profiles the raw data.
    disable_statistics=True,
    # The test split is the Evaluator's alone, and it reads raw examples.
    splits_config=transform_pb2.SplitsConfig(
      analyze=['train'], transform=['train', data_layout.EVAL]
    ),
  )


def _features(transform, config: PipelineConfig):
  """(the BackboneFeatures step or None, the inputs the Tuner and Trainer read)."""
  features = None
  if backbone_features.applies(config.module):
    features = BackboneFeatures(transform.outputs['transformed_examples'], config.module)
  return features, dict(
    examples=transform.outputs['transformed_examples'],
    transform_graph=transform.outputs['transform_graph'],
    features=features and features.outputs['features'],
  )


def _tuner(config: PipelineConfig, inputs, user_code: _UserCode, vertex: Optional[VertexSettings]):
  """The Tuner: TFX's Google Cloud one on Vertex AI; locally the parallel one."""
  inputs = dict(tuner_fn=TUNER_FN, **inputs)
  if vertex:
    components = _vertex_components()
    return components.Tuner(
      **inputs,
      tune_args=tuner_pb2.TuneArgs(num_parallel_trials=vertex.num_parallel_trials),
      custom_config=user_code.custom_config(
        components.tuner_job_config(vertex),
        # Trials and checkpoints every tuning machine can read (see tuner_fn).
        shared_trials_dir=os.path.join(config.pipeline_root, 'tuner_trials'),
      ),
    )
  # keras-tuner's state outlives the run there, so a killed search resumes.
  custom_config = user_code.custom_config(
    tuning_dir=tuning_state.base_dir(config.pipeline_root, config.pipeline_name)
  )
  # With one trial at a time, TFX's stock search; otherwise a keras-tuner chief
  # and workers on this machine. The id is the stock Tuner's, which what reads
  # its outputs by name knows.
  return ParallelTuner(
    **inputs,
    custom_config=custom_config,
    tune_args=tuner_pb2.TuneArgs(num_parallel_trials=config.parallel_trials),
  ).with_id('Tuner')


def _hparams_importer(hparams_from: str) -> Importer:
  """Imports an earlier Tuner's best_hyperparameters folder as the Trainer's input.

  TFX's Trainer reads the only file in that folder, so it must hold
  best_hyperparameters.txt alone; the local runner passes a one-file copy
  (`hparams_file.stage`).
  """
  folder = hparams_from
  if os.path.basename(hparams_from) == 'best_hyperparameters.txt':
    folder = os.path.dirname(hparams_from)
  return Importer(source_uri=folder, artifact_type=standard_artifacts.HyperParameters).with_id(
    'hparams_importer'
  )


def _trainer(
  config: PipelineConfig,
  inputs,
  hyperparameters_from,
  user_code: _UserCode,
  vertex: Optional[VertexSettings],
):
  """The Trainer (TFX's Google Cloud one on Vertex AI).

  It trains with the best hyperparameters of `hyperparameters_from` (the
  Tuner, or the importer), or with the search space defaults if None.
  """
  hyperparameters = None
  if hyperparameters_from is not None:
    imported = isinstance(hyperparameters_from, Importer)
    hyperparameters = hyperparameters_from.outputs['result' if imported else 'best_hyperparameters']
  trainer_cls, custom_config = features_input.Trainer, user_code.custom_config()
  if vertex:
    trainer_cls = _vertex_components().Trainer
    custom_config = user_code.custom_config(_vertex_components().trainer_job_config(vertex))
  return trainer_cls(
    run_fn=RUN_FN,
    **inputs,
    hyperparameters=hyperparameters,
    train_args=trainer_pb2.TrainArgs(num_steps=config.train_steps) if config.train_steps else None,
    custom_config=custom_config,
  )


def _vertex_components():
  """TFX's Google Cloud Tuner and Trainer, for Vertex AI only.

  Imported on use: they load google-cloud-aiplatform, seconds of CPU in every
  local process (each Beam worker, trial worker and component task) that never calls Vertex.
  """
  from tfx_pipeline.vertex import components

  return components


def _evaluator(example_gen, trainer, baseline, config: PipelineConfig, split: str):
  """Scores `split` (test where the data has one: a split no search or early stopping saw)."""
  return tfx_components.Evaluator(
    examples=example_gen.outputs['examples'],
    example_splits=[split],
    model=trainer.outputs['model'],
    baseline_model=baseline.outputs['model'],
    eval_config=blessing.eval_config(config.accuracy_threshold, config.max_accuracy_drop),
  )


def _tflite(example_gen, transform, trainer, config: PipelineConfig, split: str):
  """The SavedModel and its int8 TFLite model, checked on the evaluated split; or None."""
  if not config.tflite:
    return None
  return TFLiteExport(
    model=trainer.outputs['model'],
    examples=example_gen.outputs['examples'],
    transform_graph=transform.outputs['transform_graph'],
    evaluated_split=split,
    max_drop=config.max_tflite_drop,
  )


def _pusher(source, evaluator, serving_model_dir: str):
  """Pushes TFLiteExport's (or without it the Trainer's) model when the Evaluator blesses it."""
  return tfx_components.Pusher(
    model=source.outputs.get('exported_model') or source.outputs['model'],
    model_blessing=evaluator.outputs['blessing'],
    push_destination=pusher_pb2.PushDestination(
      filesystem=pusher_pb2.PushDestination.Filesystem(base_directory=serving_model_dir)
    ),
  )
