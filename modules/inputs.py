"""The one `input_fn` the Tuner and Trainer read transformed examples with."""

from typing import List, Optional

import tensorflow as tf
import tensorflow_transform as tft
from tfx import v1 as tfx
from tfx_bsl.public import tfxio

from modules import features


def input_fn(
  file_pattern: List[str],
  data_accessor: tfx.components.DataAccessor,
  tf_transform_output: tft.TFTransformOutput,
  batch_size: int,
  *,
  shuffle: bool = True,
  repeat: bool = False,
  seed: Optional[int] = None,
) -> tf.data.Dataset:
  """Batches of (image, label) from transformed examples.

  One pass over the data unless `repeat` (used when a fixed step count is set).
  """
  dataset = data_accessor.tf_dataset_factory(
    file_pattern,
    tfxio.TensorFlowDatasetOptions(
      batch_size=batch_size,
      label_key=features.LABEL,
      shuffle=shuffle,
      shuffle_seed=seed,
      num_epochs=None if repeat else 1,
    ),
    tf_transform_output.transformed_metadata.schema,
  )
  return dataset.map(
    lambda x, y: (x[features.IMAGE], y), num_parallel_calls=tf.data.AUTOTUNE
  ).prefetch(tf.data.AUTOTUNE)
