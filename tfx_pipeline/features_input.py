"""TFX's Tuner and Trainer with one more input: the BackboneFeatures step's artifact.

TFX's components take a fixed set of inputs, and their executors hand
`tuner_fn` / `run_fn` only the ones they know. `with_features` makes a
component class that takes an optional `features` channel too (so the step
runs first, and its artifact is part of the component's cache key and lineage);
its executor puts the artifact's folder into the custom_config
(`feature_records.CUSTOM_CONFIG_KEY`) and runs the stock executor. On Vertex
the stock cloud executors pass that custom_config on to their jobs.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from tfx import types
from tfx.components.trainer import component as trainer_component
from tfx.components.trainer import executor as trainer_executor
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter
from tfx.utils import json_utils

from modules.training import feature_records

FEATURES = 'features'
_CUSTOM_CONFIG = 'custom_config'


class FeaturesIntoConfig:
  """Executor mixin: the `features` artifact's folder into the custom_config, then the stock Do."""

  def Do(
    self,
    input_dict: Dict[str, List[types.Artifact]],
    output_dict: Dict[str, List[types.Artifact]],
    exec_properties: Dict[str, Any],
  ) -> None:
    artifacts = input_dict.get(FEATURES) or []
    if artifacts:
      custom = json_utils.loads(exec_properties.get(_CUSTOM_CONFIG) or 'null') or {}
      custom[feature_records.CUSTOM_CONFIG_KEY] = artifacts[0].uri
      exec_properties = {**exec_properties, _CUSTOM_CONFIG: json_utils.dumps(custom)}
    return super().Do(input_dict, output_dict, exec_properties)


class _TakesFeatures:
  """Component mixin: the stock component's spec, plus the optional `features` input."""

  _STOCK: type

  def __init__(self, *, features: Optional[types.BaseChannel] = None, **kwargs):
    # The stock class checks its arguments and builds its spec; the same values
    # (outputs as new channels, owned by this component) go into the wider spec.
    stock = self._STOCK(**kwargs).spec
    outputs = {key: types.Channel(type=p.type) for key, p in self.SPEC_CLASS.OUTPUTS.items()}
    spec = self.SPEC_CLASS(**stock.exec_properties, **stock.inputs, **outputs, features=features)
    base_component.BaseComponent.__init__(self, spec=spec)


def with_features(stock: type, executor: type, name: Optional[str] = None) -> type:
  """`stock`'s component class, run by `executor`, that also takes `features=`.

  `executor` must be importable by its name (Vertex runs it by name): a
  module-level `class X(FeaturesIntoConfig, StockExecutor)`. The class is
  `name` in the executor's module, or has the stock class's name and module (the
  node type Vertex and TFX's tools know).
  """
  spec = type(
    stock.SPEC_CLASS.__name__,
    (stock.SPEC_CLASS,),
    {
      'INPUTS': {
        **stock.SPEC_CLASS.INPUTS,
        FEATURES: ChannelParameter(type=standard_artifacts.Examples, optional=True),
      }
    },
  )
  return type(
    name or stock.__name__,
    (_TakesFeatures, stock),
    {
      '_STOCK': stock,
      'SPEC_CLASS': spec,
      'EXECUTOR_SPEC': executor_spec.ExecutorClassSpec(executor),
      '__module__': executor.__module__ if name else stock.__module__,
      '__doc__': f'{stock.__doc__}\n\nWith the BackboneFeatures artifact as `features`.',
    },
  )


class TrainerExecutor(FeaturesIntoConfig, trainer_executor.GenericExecutor):
  """TFX's Trainer executor, with the features artifact's folder in `run_fn`'s custom_config."""


# The local Trainer.
Trainer = with_features(trainer_component.Trainer, TrainerExecutor)
