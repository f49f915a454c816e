"""The one `input_fn` the Tuner and Trainer read transformed examples with."""

from typing import List, Optional

import tensorflow as tf
import tensorflow_transform as tft
from tfx.components.trainer.fn_args_utils import DataAccessor
from tfx_bsl.public import tfxio

from modules import features, image_codec

# The shuffle buffer holds serialized examples (uint8 pixels, about 150 KB at
# 224 px): bounded in bytes, so memory stays the same whatever the data size.
SHUFFLE_BUFFER_BYTES = 256 * 2**20


def shuffle_buffer_size(image_size: int, batch_size: int) -> int:
  """Examples in the shuffle buffer: SHUFFLE_BUFFER_BYTES of stored images, at least a batch."""
  return max(batch_size, SHUFFLE_BUFFER_BYTES // (image_size * image_size * 3))


def input_fn(
  file_pattern: List[str],
  data_accessor: DataAccessor,
  tf_transform_output: tft.TFTransformOutput,
  batch_size: int,
  *,
  image_size: int,
  shuffle: bool = True,
  repeat: bool = False,
  seed: Optional[int] = None,
) -> tf.data.Dataset:
  """Batches of (image in [0, 1], label) from transformed examples, streamed from disk.

  One pass over the data unless `repeat` (used when a fixed step count is set).
  Images stay uint8 until a batch is converted by `image_codec.model_input`,
  the conversion the exported model applies too.
  """
  dataset = data_accessor.tf_dataset_factory(
    file_pattern,
    tfxio.TensorFlowDatasetOptions(
      batch_size=batch_size,
      label_key=features.LABEL,
      shuffle=shuffle,
      shuffle_buffer_size=shuffle_buffer_size(image_size, batch_size),
      shuffle_seed=seed,
      num_epochs=None if repeat else 1,
    ),
    tf_transform_output.transformed_metadata.schema,
  )
  return dataset.map(
    lambda x, y: (image_codec.model_input(x[features.IMAGE], image_size), y),
    num_parallel_calls=tf.data.AUTOTUNE,
  ).prefetch(tf.data.AUTOTUNE)
