"""The exported serving model: raw input in, calibrated class probabilities and names out.

The Transform graph is embedded, so both signatures take raw data:
- `serving_default`: serialized tf.Example (what TFMA's Evaluator feeds);
- `serving_jpeg`: encoded image bytes, one photo per element.
Both return `probabilities` rescaled by the temperature the Trainer fitted
(modules/model/calibration.py), `uncalibrated_probabilities` (the model's own
softmax), and the top class's `class_id` and `class_name`, the same for both.
`model.image_probabilities(images)` takes what the model is fed (decoded
[N, size, size, 3] images in [0, 1]) and returns the calibrated probabilities:
the function the TFLite model is converted from (modules/deploy/).
"""

import dataclasses
import json
import os
import types
from typing import Dict, Optional, Sequence

import keras
import tensorflow as tf
import tensorflow_transform as tft

from modules import features, image_codec
from modules.model import calibration
from modules.runtime import whole_file


class ClassifierModule(tf.Module):
  """Holds the Keras model, the Transform layer and the class names for export.

  The Transform layer is a tf_keras object, so it cannot join a Keras 3 graph;
  a plain tf.Module can hold both and call them from its tf.functions.
  """

  def __init__(
    self,
    model: keras.Model,
    tf_transform_output: tft.TFTransformOutput,
    class_names: Sequence[str],
    image_size: int,
    temperature: float = 1.0,
  ):
    super().__init__()
    self.model = model
    self.image_size = image_size
    # A variable, so it is saved: `tf.saved_model.load(dir).temperature`.
    self.temperature = tf.Variable(temperature, trainable=False, dtype=tf.float32)
    layer = tf_transform_output.transform_features_layer()
    # Called from the tf.functions below, but not an attribute: saving a tf_keras Model
    # traces a default signature and its call functions (7 s of a tiny Trainer's 14 s) that
    # nothing here serves. What the layer needs saved, the loaded Transform SavedModel (its
    # resources and assets), is tracked on its own, as the layer itself tracks it.
    self._transform = types.SimpleNamespace(layer=layer)
    self.transform_model = layer._saved_model_loader._imported
    self.class_names = tf.constant(list(class_names))
    raw_spec = tf_transform_output.raw_feature_spec()
    # Parse only the image: callers need not send labels or file names.
    self._parse_spec = {features.IMAGE_KEY: raw_spec[features.IMAGE_KEY]}
    # Traced here: its input shape is this model's image size.
    self.image_probabilities = tf.function(
      lambda images: self._calibrated(images)[0],
      input_signature=[tf.TensorSpec([None, image_size, image_size, 3], tf.float32, 'images')],
      autograph=False,
    )

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name='images')], autograph=False)
  def model_input(self, encoded: tf.Tensor) -> tf.Tensor:
    """[N] encoded images -> the [N, size, size, 3] tensor the model is fed.

    Transform's graph, then the same `image_codec.model_input` the input function
    uses. Saved with the model (`loaded.model_input(images)`), to check what it sees.
    """
    # The Transform graph expects the [N, 1] shape SchemaGen inferred.
    transformed = self._transform.layer({features.IMAGE_KEY: tf.reshape(encoded, [-1, 1])})
    return image_codec.model_input(transformed[features.IMAGE], self.image_size)

  def _calibrated(self, images: tf.Tensor):
    """(calibrated, uncalibrated) probabilities [N, K] of model-input images."""
    uncalibrated = self.model(images, training=False)
    # log(p) is the logits up to a constant per row, which softmax ignores.
    logits = tf.math.log(tf.maximum(uncalibrated, calibration.TINY)) / self.temperature
    return tf.nn.softmax(logits, axis=-1), uncalibrated

  def classify(self, encoded: tf.Tensor) -> Dict[str, tf.Tensor]:
    """[N] encoded images -> (uncalibrated_)probabilities [N, K], class_id [N], class_name [N]."""
    calibrated, uncalibrated = self._calibrated(self.model_input(encoded))
    # The class comes from the model's own output: calibration never changes it.
    class_id = tf.argmax(uncalibrated, axis=-1)
    return {
      'probabilities': calibrated,
      'uncalibrated_probabilities': uncalibrated,
      'class_id': class_id,
      'class_name': tf.gather(self.class_names, class_id),
    }

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name='examples')], autograph=False)
  def serve_examples(self, examples):
    parsed = tf.io.parse_example(examples, self._parse_spec)
    return self.classify(tf.reshape(parsed[features.IMAGE_KEY], [-1]))

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name='images')], autograph=False)
  def serve_jpeg(self, images):
    return self.classify(images)


def export(
  model: keras.Model,
  tf_transform_output: tft.TFTransformOutput,
  class_names: Sequence[str],
  export_dir: str,
  image_size: int,
  calibrated: Optional[calibration.Fitted] = None,
) -> None:
  """Writes the SavedModel with both serving signatures, and `calibrated` beside it."""
  temperature = calibrated.temperature if calibrated else 1.0
  module = ClassifierModule(model, tf_transform_output, class_names, image_size, temperature)
  tf.saved_model.save(
    module,
    export_dir,
    signatures={
      'serving_default': module.serve_examples,
      'serving_jpeg': module.serve_jpeg,
    },
  )
  if calibrated:
    whole_file.write(
      os.path.join(export_dir, calibration.CALIBRATION_FILE),
      json.dumps(dataclasses.asdict(calibrated), indent=2),
    )
