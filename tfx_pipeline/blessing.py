"""What the Evaluator blesses, and so what Pusher pushes: the accuracy gate.

`create_pipeline` (pipeline.py) gives the Evaluator `eval_config` and, as its
baseline, `latest_blessed_model`; the local summary (local/evaluation.py) reads
the evaluation back by `ACCURACY_METRIC`.
"""

from __future__ import annotations

import tensorflow_model_analysis as tfma
from tfx.dsl.components.common.resolver import Resolver
from tfx.dsl.input_resolution.strategies.latest_blessed_model_strategy import (
  LatestBlessedModelStrategy,
)
from tfx.types import standard_artifacts
from tfx.types.channel import Channel

from modules import features
from modules.model import calibration

ACCURACY_METRIC = 'sparse_categorical_accuracy'
ACCURACY_CLASS = 'SparseCategoricalAccuracy'
# The serving model's softmax before its temperature (modules/model/serving.py).
UNCALIBRATED_OUTPUT = 'uncalibrated_probabilities'
# The Evaluator's baseline: the model behind the newest blessing (TFX's own resolver).
BASELINE_RESOLVER = 'latest_blessed_model_resolver'
# A candidate that equals its baseline passes the change threshold despite float rounding.
_CHANGE_EPSILON = 1e-9


def latest_blessed_model() -> Resolver:
  """The latest blessed model of this pipeline (nothing on the first run), for the Evaluator."""
  return Resolver(
    strategy_class=LatestBlessedModelStrategy,
    model=Channel(type=standard_artifacts.Model),
    model_blessing=Channel(type=standard_artifacts.ModelBlessing),
  ).with_id(BASELINE_RESOLVER)


def eval_config(accuracy_threshold: float, max_accuracy_drop: float = 0.0) -> tfma.EvalConfig:
  """TFMA accuracy overall and per class, the confusion matrix and reliability; overall gates.

  The candidate is blessed when its accuracy is at least `accuracy_threshold`
  and, given a baseline (the latest blessed model), at most `max_accuracy_drop`
  below the baseline's. TFX's Evaluator ignores the change threshold when no
  baseline is given (the first blessed run). The candidate's reliability is
  kept before and after its temperature (`reliability_specs`).
  """
  return tfma.EvalConfig(
    model_specs=[
      tfma.ModelSpec(
        signature_name='serving_default',
        label_key=features.LABEL_KEY,
        prediction_key='probabilities',
      )
    ],
    slicing_specs=[tfma.SlicingSpec(), tfma.SlicingSpec(feature_keys=[features.LABEL_TEXT_KEY])],
    metrics_specs=[
      tfma.MetricsSpec(
        metrics=[
          tfma.MetricConfig(class_name='ExampleCount'),
          tfma.MetricConfig(
            class_name=ACCURACY_CLASS,
            # The overall slice only: a MetricConfig's `threshold` would gate every
            # slice, so one weak class would keep a good model from being pushed.
            per_slice_thresholds=[
              tfma.PerSliceMetricThreshold(
                slicing_specs=[tfma.SlicingSpec()],
                threshold=tfma.MetricThreshold(
                  value_threshold=tfma.GenericValueThreshold(
                    lower_bound={'value': accuracy_threshold}
                  ),
                  change_threshold=tfma.GenericChangeThreshold(
                    direction=tfma.MetricDirection.HIGHER_IS_BETTER,
                    absolute={'value': -max_accuracy_drop - _CHANGE_EPSILON},
                  ),
                ),
              )
            ],
          ),
          tfma.MetricConfig(class_name='MultiClassConfusionMatrixPlot'),
        ]
      ),
      *reliability_specs(),
    ],
  )


def reliability_specs() -> list:
  """CalibrationPlots of the top class's probability, calibrated ('') and uncalibrated.

  Top-1 binarization turns each example into (top class's probability, right
  or not): the reliability diagram's points. The candidate only: a baseline
  exported before calibration has no uncalibrated output.
  """
  plot = tfma.MetricConfig(
    class_name='CalibrationPlot',
    config=f'{{"num_buckets": {calibration.BINS}, "left": 0.0, "right": 1.0}}',
  )
  return [
    tfma.MetricsSpec(
      model_names=[tfma.CANDIDATE_KEY],
      output_names=[output],
      binarize=tfma.BinarizationOptions(top_k_list={'values': [1]}),
      metrics=[plot],
    )
    for output in ('', UNCALIBRATED_OUTPUT)
  ]
