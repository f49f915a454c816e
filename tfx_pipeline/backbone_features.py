"""BackboneFeatures: the frozen backbones' features of every train and eval image, on Beam.

Between Transform and the Tuner, in runs that train the built-in head on a
SavedModel backbone (`applies`). Beam's `RunInference` loads each backbone once
per worker and runs it over batches of the transformed images; the records
(modules/training/feature_records.py) are an Examples artifact that the Tuner
and the Trainer read (tfx_pipeline/features_input.py). So the pass spreads over
every local core or Dataflow worker with the pipeline's Beam settings, and TFX's
cache decides when it runs again: new data or Transform graph (new input
artifacts), another backbone, image size or feature code (new parameters).
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Dict, List

import apache_beam as beam
import tensorflow as tf
from apache_beam.ml.inference import base as inference
from apache_beam.options.pipeline_options import PipelineOptions
from tfx import types
from tfx.dsl.components.base import base_beam_component, base_beam_executor, executor_spec
from tfx.types import artifact_utils, standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter

from modules.module_config import ModuleConfig, native_image_size
from modules.search import search_space
from modules.training import feature_cache, feature_records
from tfx_pipeline import code_version

VIEWS_KEY = 'views'
IMAGE_SIZE_KEY = 'image_size'
FINGERPRINT_KEY = 'fingerprint'
# Images per backbone call: RunInference batches between these.
_MIN_BATCH, _MAX_BATCH = 16, 64
_BYTES = beam.coders.BytesCoder()


def applies(module: ModuleConfig) -> bool:
  """The built-in head on a frozen SavedModel backbone: the head trains on features.

  With --fine-tune too: its first phase trains the head on the frozen features.
  """
  return feature_cache.applies(dataclasses.replace(module, fine_tune=False))


def views(module: ModuleConfig) -> List[feature_records.View]:
  """Every (backbone, image size) a run of `module` can train a head on.

  The space's backbone choices (or --backbone) at each of its `image_size`
  values where the model reads them, otherwise each at its own size.
  """
  from modules.model import model

  space = search_space.for_module(module)[0]
  sizes = search_space.image_sizes(space) if model.reads_image_size(module) else []
  sometimes = bool(sizes) and bool(space.entry('image_size').get('condition'))
  return feature_records.views_of(
    (module.backbone, module.image_size),
    search_space.backbone_choices(space),
    native_image_size,
    sizes,
    sometimes,
  )


class BackboneFeaturesSpec(types.ComponentSpec):
  PARAMETERS = {
    VIEWS_KEY: ExecutionParameter(type=str),  # JSON [[backbone, image size], ...]
    IMAGE_SIZE_KEY: ExecutionParameter(type=int),  # The size Transform stores images at.
    # The feature code and any user SavedModel's files: a change is a new execution.
    FINGERPRINT_KEY: ExecutionParameter(type=str),
  }
  INPUTS = {
    'examples': ChannelParameter(type=standard_artifacts.Examples),
  }
  OUTPUTS = {
    'features': ChannelParameter(type=standard_artifacts.Examples),
  }


class _Extractor:
  """RunInference's model: every view's backbone in one traced function (held by weakref)."""

  def __init__(self, views, stored_size: int):
    self.call = feature_records.batch_extractor(views, stored_size)


class _Backbones(inference.ModelHandler):
  """Loads the views' backbones once per worker, and runs them over batches of examples."""

  def __init__(self, views, stored_size: int):
    super().__init__()
    self._views, self._stored_size = [tuple(v) for v in views], stored_size

  def load_model(self):
    return _Extractor(self._views, self._stored_size)

  def run_inference(self, batch, model, inference_args=None):
    labels, vectors = model.call(tf.constant(list(batch)))
    labels, vectors = labels.numpy(), {k: v.numpy() for k, v in vectors.items()}
    for i, label in enumerate(labels):
      record = feature_records.to_example(label, {k: v[i] for k, v in vectors.items()})
      yield inference.PredictionResult(example=None, inference=record)

  def batch_elements_kwargs(self):
    return {'min_batch_size': _MIN_BATCH, 'max_batch_size': _MAX_BATCH}


class Executor(base_beam_executor.BaseBeamExecutor):
  """Reads the transformed train and eval splits, writes their features and `features.json`."""

  def Do(
    self,
    input_dict: Dict[str, List[types.Artifact]],
    output_dict: Dict[str, List[types.Artifact]],
    exec_properties: Dict[str, Any],
  ) -> None:
    view_list = [tuple(v) for v in json.loads(exec_properties[VIEWS_KEY])]
    stored = int(exec_properties[IMAGE_SIZE_KEY])
    examples = artifact_utils.get_single_instance(input_dict['examples'])
    out = artifact_utils.get_single_instance(output_dict['features'])
    out.split_names = artifact_utils.encode_split_names(list(feature_records.SPLITS))
    with self._make_beam_pipeline() as pipeline:
      read = [
        pipeline
        | f'Read[{split}]' >> beam.io.ReadFromTFRecord(_split_files(examples, split), coder=_BYTES)
        | f'Key[{split}]' >> beam.Map(lambda record, split=split: (split, record))
        for split in feature_records.SPLITS
      ]
      # One RunInference for both splits: each worker loads the backbones once.
      records = (
        read
        | 'Splits' >> beam.Flatten()
        | 'Spread' >> _spread(self._beam_pipeline_args)
        | 'Features'
        >> inference.RunInference(inference.KeyedModelHandler(_Backbones(view_list, stored)))
        | 'Record' >> beam.MapTuple(lambda split, result: (split, result.inference))
      )
      _write(records, out, view_list)


def _write(records: beam.PCollection, out: types.Artifact, view_list) -> None:
  """(split, record) pairs -> each split's gzip'd records and `features.json`."""
  for split in feature_records.SPLITS:
    _ = (
      records
      | f'Only[{split}]' >> beam.Filter(lambda r, split=split: r[0] == split)
      | f'Unkey[{split}]' >> beam.Values()
      | f'Write[{split}]'
      >> beam.io.WriteToTFRecord(
        os.path.join(artifact_utils.get_split_uri([out], split), 'features'),
        file_name_suffix='.gz',
      )
    )
  # One record, whichever split: each view's feature size is read off it.
  sample = (
    records | 'Values' >> beam.Values() | 'Sample' >> beam.combiners.Sample.FixedSizeGlobally(1)
  )
  _ = (
    records
    | 'Count' >> beam.combiners.Count.PerKey()
    | 'ToDict' >> beam.combiners.ToDict()
    | 'Summary'
    >> beam.Map(
      feature_records.write_summary_of, out.uri, view_list, beam.pvalue.AsSingleton(sample)
    )
  )


def _split_files(examples: types.Artifact, split: str) -> str:
  return os.path.join(artifact_utils.get_split_uri([examples], split), '*')


def _spread(beam_args) -> beam.PTransform:
  """A Reshuffle where workers are processes or machines; nothing in one process.

  A gzip'd file is read whole by one worker, so its records are spread over the
  others; but a Reshuffle holds every record in memory on the DirectRunner's
  in-process modes (3.3 GB at 3,670 images), where TensorFlow's threads already
  use every core.
  """
  options = PipelineOptions(list(beam_args or [])).get_all_options()
  runner = options.get('runner') or 'DirectRunner'
  in_process = options.get('direct_running_mode') in (None, 'in_memory', 'multi_threading')
  if runner in ('DirectRunner', 'direct') and in_process:
    return beam.Map(lambda record: record)
  return beam.Reshuffle()


class BackboneFeatures(base_beam_component.BaseBeamComponent):
  """The step: `examples` (Transform's) -> `features` (feature_records)."""

  SPEC_CLASS = BackboneFeaturesSpec
  EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)

  def __init__(self, examples: types.BaseChannel, module: ModuleConfig):
    computed = views(module)  # Reads the search space once.
    super().__init__(
      spec=BackboneFeaturesSpec(
        examples=examples,
        views=json.dumps(computed),
        image_size=module.image_size,
        fingerprint=code_version.features_code(computed),
        features=types.Channel(type=standard_artifacts.Examples),
      )
    )
