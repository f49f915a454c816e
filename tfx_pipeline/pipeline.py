"""`create_pipeline`: the flower tuner TFX pipeline, shared by every runner.

ImportExampleGen -> StatisticsGen -> SchemaGen -> ExampleValidator -> Transform
-> Tuner -> Trainer -> Evaluator -> Pusher. The user code is passed by dotted
path, so no module wheel is built and the component cache keys on inputs only.
With `vertex` settings, the Tuner and Trainer are TFX's Google Cloud flavours,
which run `tuner_fn` / `run_fn` as Vertex AI custom jobs.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Optional, Sequence

import tensorflow_model_analysis as tfma
from ml_metadata.proto import metadata_store_pb2
from tfx import v1 as tfx

from modules import feature_cache, features
from modules.tuning import state as tuning_state
from modules.module_config import ModuleConfig, RunPaths
from tfx_pipeline import code_version
from tfx_pipeline.data_folder import layout as data_layout
from tfx_pipeline.parallel.component import ParallelTuner
from tfx_pipeline.vertex.settings import VertexSettings

PREPROCESSING_FN = 'modules.preprocessing.preprocessing_fn'
TUNER_FN = 'modules.tuner.tuner_fn'
RUN_FN = 'modules.trainer.run_fn'
ACCURACY_METRIC = 'sparse_categorical_accuracy'
_cloud = tfx.extensions.google_cloud_ai_platform


def eval_config(accuracy_threshold: float) -> tfma.EvalConfig:
  """TFMA accuracy overall and per class; the overall value gates the push."""
  return tfma.EvalConfig(
      model_specs=[tfma.ModelSpec(signature_name='serving_default',
                                  label_key=features.LABEL_KEY,
                                  prediction_key='probabilities')],
      slicing_specs=[tfma.SlicingSpec(),
                     tfma.SlicingSpec(feature_keys=[features.LABEL_TEXT_KEY])],
      metrics_specs=[tfma.MetricsSpec(metrics=[
          tfma.MetricConfig(class_name='ExampleCount'),
          tfma.MetricConfig(
              class_name='SparseCategoricalAccuracy',
              threshold=tfma.MetricThreshold(value_threshold=tfma.GenericValueThreshold(
                  lower_bound={'value': accuracy_threshold}))),
      ])])


def _vertex_job(vertex: VertexSettings, args_key: str, job: dict) -> dict:
  """The custom_config entries TFX's cloud Tuner/Trainer start a Vertex AI custom job from."""
  return {_cloud.ENABLE_VERTEX_KEY: True, _cloud.VERTEX_REGION_KEY: vertex.region, args_key: job}


def _hparams_importer(hparams_from: str) -> tfx.dsl.Importer:
  """Imports an earlier Tuner's best_hyperparameters folder as the Trainer's input."""
  folder = hparams_from
  if os.path.basename(hparams_from) == 'best_hyperparameters.txt':
    folder = os.path.dirname(hparams_from)
  return tfx.dsl.Importer(source_uri=folder,
                          artifact_type=tfx.types.standard_artifacts.HyperParameters
                          ).with_id('hparams_importer')


def create_pipeline(
    *,
    pipeline_name: str,
    pipeline_root: str,
    data_root: str,
    serving_model_dir: str,
    module_config: ModuleConfig,
    tune: bool = True,
    hparams_from: Optional[str] = None,
    train_steps: Optional[int] = None,
    accuracy_threshold: float = 0.5,
    metadata_connection_config: Optional[metadata_store_pb2.ConnectionConfig] = None,
    beam_pipeline_args: Sequence[str] = (),
    enable_cache: bool = True,
    vertex: Optional[VertexSettings] = None,
    layout: Optional[data_layout.DataLayout] = None,
    parallel_trials: int = 1,
) -> tfx.dsl.Pipeline:
  """Builds the pipeline. Raises data_layout.DataLayoutError for unusable data.

  `vertex` runs the Tuner and Trainer as Vertex AI custom jobs; `layout` gives
  the splits of a `data_root` that cannot be listed here (gs://).
  `parallel_trials` > 1 runs the local Tuner's trials that many at once
  (`tfx_pipeline/parallel/`).
  """
  layout = layout or data_layout.resolve(data_root)
  # Backbone features the Tuner computes, the Trainer reuses (and later runs).
  paths = RunPaths(feature_cache_dir=feature_cache.base_dir(pipeline_root))
  custom_config = {**module_config.to_custom_config(), **paths.to_custom_config(),
                   'code': code_version.training_code()}

  example_gen = tfx.components.ImportExampleGen(
      input_base=data_root, input_config=layout.input_config,
      output_config=layout.output_config)
  statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs['examples'])
  schema_gen = tfx.components.SchemaGen(
      statistics=statistics_gen.outputs['statistics'], infer_feature_shape=True)
  example_validator = tfx.components.ExampleValidator(
      statistics=statistics_gen.outputs['statistics'], schema=schema_gen.outputs['schema'])
  transform = tfx.components.Transform(
      examples=example_gen.outputs['examples'], schema=schema_gen.outputs['schema'],
      preprocessing_fn=PREPROCESSING_FN,
      custom_config={**module_config.transform_custom_config(),
                     'code': code_version.transform_code()},
      # Statistics over transformed images would profile every pixel of every image
      # (224*224*3 features) and took ~40% of Transform's time; StatisticsGen
      # already profiles the raw data.
      disable_statistics=True)
  components = [example_gen, statistics_gen, schema_gen, example_validator, transform]

  hyperparameters = None
  if tune:
    tuner_inputs = dict(tuner_fn=TUNER_FN, examples=transform.outputs['transformed_examples'],
                        transform_graph=transform.outputs['transform_graph'])
    if vertex:
      tuner = _cloud.Tuner(
          **tuner_inputs,
          tune_args=tfx.proto.TuneArgs(num_parallel_trials=vertex.num_parallel_trials),
          custom_config={
              **custom_config,
              **_vertex_job(vertex, _cloud.experimental.TUNING_ARGS_KEY, vertex.tuner_job()),
              # Trials and checkpoints every tuning machine can read (see tuner_fn).
              **dataclasses.replace(paths, shared_trials_dir=os.path.join(
                  pipeline_root, 'tuner_trials')).to_custom_config()})
    else:
      # keras-tuner's state outlives the run there, so a killed search resumes.
      tuner_config = {**custom_config, **dataclasses.replace(
          paths, tuning_dir=tuning_state.base_dir(pipeline_root, pipeline_name)).to_custom_config()}
      if parallel_trials > 1:
        # A keras-tuner chief and workers on this machine; the id keeps the
        # node (and what reads its outputs by name) the same as the stock Tuner's.
        tuner = ParallelTuner(
            **tuner_inputs, custom_config=tuner_config,
            tune_args=tfx.proto.TuneArgs(num_parallel_trials=parallel_trials)).with_id('Tuner')
      else:
        tuner = tfx.components.Tuner(**tuner_inputs, custom_config=tuner_config)
    components.append(tuner)
    hyperparameters = tuner.outputs['best_hyperparameters']
  elif hparams_from:
    importer = _hparams_importer(hparams_from)
    components.append(importer)
    hyperparameters = importer.outputs['result']

  trainer_cls, trainer_config = tfx.components.Trainer, custom_config
  if vertex:
    trainer_cls = _cloud.Trainer
    trainer_config = {**custom_config,
                      **_vertex_job(vertex, _cloud.TRAINING_ARGS_KEY, vertex.trainer_job())}
  trainer = trainer_cls(
      run_fn=RUN_FN,
      examples=transform.outputs['transformed_examples'],
      transform_graph=transform.outputs['transform_graph'],
      hyperparameters=hyperparameters,
      train_args=tfx.proto.TrainArgs(num_steps=train_steps) if train_steps else None,
      custom_config=trainer_config)
  evaluator = tfx.components.Evaluator(
      examples=example_gen.outputs['examples'], model=trainer.outputs['model'],
      eval_config=eval_config(accuracy_threshold))
  pusher = tfx.components.Pusher(
      model=trainer.outputs['model'], model_blessing=evaluator.outputs['blessing'],
      push_destination=tfx.proto.PushDestination(
          filesystem=tfx.proto.PushDestination.Filesystem(base_directory=serving_model_dir)))
  components += [trainer, evaluator, pusher]

  return tfx.dsl.Pipeline(
      pipeline_name=pipeline_name, pipeline_root=pipeline_root, components=components,
      enable_cache=enable_cache, metadata_connection_config=metadata_connection_config,
      beam_pipeline_args=list(beam_pipeline_args))
