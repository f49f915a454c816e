"""Feature extractors the classifier head sits on.

Either the small built-in CNN (the default: it needs no download), or a TF-Hub
handle / local SavedModel path loaded as a Keras 3 layer. `hub.KerasLayer` is a
tf_keras layer that Keras 3 models reject, so the SavedModel is loaded with
`tf.saved_model.load` and called from a Keras 3 layer instead.
"""
import keras
import tensorflow as tf
import tensorflow_hub as hub

from modules.module_config import BUILTIN_BACKBONE


def small_cnn() -> keras.Sequential:
  """Four strided conv blocks and global pooling: fast on CPU, any input size."""
  blocks = []
  for filters in (16, 32, 64, 128):
    blocks += [
        keras.layers.Conv2D(filters, 3, strides=2, padding='same', use_bias=False),
        # A faster moving average than Keras' 0.99: small data sets give few
        # steps per epoch, and slow statistics leave eval-time outputs wrong.
        keras.layers.BatchNormalization(momentum=0.9),
        keras.layers.ReLU(),
    ]
  return keras.Sequential(blocks + [keras.layers.GlobalAveragePooling2D()], name='cnn')


class _AdoptedVariable(keras.Variable):
  """A Keras variable that wraps an existing tf.Variable instead of creating one.

  Fine-tuning needs the SavedModel's own variables (the ones its functions
  read) to be the trainable weights Keras updates.
  """

  def __init__(self, variable: tf.Variable):
    self._adopt = variable
    super().__init__(initializer=variable.read_value(), dtype=variable.dtype,
                     trainable=True, name=variable.name.split(':')[0].replace('/', '_'))

  def _initialize(self, value):
    self._value = self._adopt


@keras.saving.register_keras_serializable(package='flower_tuner')
class SavedModelFeatures(keras.layers.Layer):
  """Calls a TF-Hub / SavedModel image feature extractor: [N,H,W,3] in [0,1] -> [N,D].

  Frozen, the SavedModel's variables are not Keras weights, so training leaves
  them alone; with `fine_tune=True` they are adopted as trainable weights.
  """

  def __init__(self, handle: str, fine_tune: bool = False, **kwargs):
    super().__init__(**kwargs)
    self.handle = handle
    self.fine_tune = fine_tune
    self._module = tf.saved_model.load(hub.resolve(handle))
    self._fn = _feature_function(self._module, handle)
    if fine_tune:
      variables = _trainable_variables(self._module)
      if not variables:
        raise ValueError(f'backbone {handle!r} has no trainable variables: '
                         'drop --fine-tune or use a trainable SavedModel.')
      self._adopted = [_AdoptedVariable(v) for v in variables]
      for variable in self._adopted:
        self._track_variable(variable)

  def call(self, images, training=False):
    return self._fn(images)

  def compute_output_shape(self, input_shape):
    probe = self._fn(tf.zeros([1] + list(input_shape[1:]), tf.float32))
    return (input_shape[0], probe.shape[-1])

  def get_config(self):
    return {**super().get_config(), 'handle': self.handle, 'fine_tune': self.fine_tune}


def _trainable_variables(module) -> list:
  """The SavedModel's trainable variables: its reusable-SavedModel list, or every one it tracks."""
  listed = list(getattr(module, 'trainable_variables', ()))
  if listed:
    return listed
  return [v for v in tf.train.TrackableView(module).descendants()
          if isinstance(v, tf.Variable) and v.trainable]


def _feature_function(module, handle: str):
  """The SavedModel's image -> features function, whichever way it was saved."""
  if callable(module):  # TF-Hub TF2 format and tf.Module with __call__.
    return module
  if hasattr(module, 'serve'):  # keras.Model.export().
    return module.serve
  signature = getattr(module, 'signatures', {}).get('serving_default')
  if signature is None:
    raise ValueError(f'backbone {handle!r} has no callable, serve() or serving_default '
                     'signature: export it as an image -> feature-vector SavedModel.')
  return lambda images: next(iter(signature(images).values()))


def build_backbone(handle: str, fine_tune: bool) -> keras.layers.Layer:
  """The built-in CNN for 'cnn', otherwise the SavedModel at `handle`."""
  if handle == BUILTIN_BACKBONE:
    return small_cnn()
  return SavedModelFeatures(handle, fine_tune=fine_tune, name='backbone')
