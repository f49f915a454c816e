"""TFX's Vertex AI Tuner and Trainer, taking the BackboneFeatures artifact (features_input.py).

Imported on use only: it loads google-cloud-aiplatform, which a local run never calls.
"""

from tfx.extensions.google_cloud_ai_platform.trainer import component as trainer_component
from tfx.extensions.google_cloud_ai_platform.trainer import executor as trainer_executor
from tfx.extensions.google_cloud_ai_platform.tuner import component as tuner_component
from tfx.extensions.google_cloud_ai_platform.tuner import executor as tuner_executor
from tfx.v1.extensions import google_cloud_ai_platform as cloud

from tfx_pipeline.features_input import FeaturesIntoConfig, with_features
from tfx_pipeline.vertex.settings import VertexSettings


class TunerExecutor(FeaturesIntoConfig, tuner_executor.Executor):
  """Starts the tuning job with the features artifact's folder in `tuner_fn`'s custom_config."""


class TrainerExecutor(FeaturesIntoConfig, trainer_executor.GenericExecutor):
  """Starts the training job with the features artifact's folder in `run_fn`'s custom_config."""


Tuner = with_features(tuner_component.Tuner, TunerExecutor)
Trainer = with_features(trainer_component.Trainer, TrainerExecutor)


def tuner_job_config(vertex: VertexSettings) -> dict:
  """The custom_config entries the cloud Tuner starts its Vertex AI custom jobs from."""
  return _job(vertex, cloud.experimental.TUNING_ARGS_KEY, vertex.tuner_job())


def trainer_job_config(vertex: VertexSettings) -> dict:
  """The custom_config entries the cloud Trainer starts its Vertex AI custom job from."""
  return _job(vertex, cloud.TRAINING_ARGS_KEY, vertex.trainer_job())


def _job(vertex: VertexSettings, args_key: str, job: dict) -> dict:
  return {cloud.ENABLE_VERTEX_KEY: True, cloud.VERTEX_REGION_KEY: vertex.region, args_key: job}
