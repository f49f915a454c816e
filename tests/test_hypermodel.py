"""The hypermodel: a trial's batch size and augmentation reach fit; a user's builder, its errors.

Also the image-classifier hyperparameters of the built-in model: dropout,
label smoothing, SGD momentum and the fine-tuned backbone layers.
"""

import textwrap

import keras_tuner
import numpy as np
import pytest

from modules.model import builder, model, space_check
from modules.model.builder import HypermodelError
from modules.model.hypermodel import FlowerHyperModel
from modules.module_config import ModuleConfig
from modules.search import search_space
from modules.training import training_data
from modules.training.augmentation import Augmentation

BUILDERS = '''
import keras

def _model(image_size, outputs=5, activation='softmax'):
  return keras.Sequential([
    keras.Input((image_size, image_size, 3)),
    keras.layers.GlobalAveragePooling2D(),
    keras.layers.Dense(hp_units(), activation='relu'),
    keras.layers.Dense(outputs, activation=activation),
  ])

def hp_units():
  return 4

def good(hp, num_classes=5, image_size=224):
  hp.Int('units', 4, 8)
  model = _model(image_size, num_classes)
  model.compile('adam', 'sparse_categorical_crossentropy', metrics=['accuracy'])
  return model

def tutorial(hp):
  """As keras-tuner's tutorials write it: hp only, sizes written in."""
  model = _model(32)
  model.compile(
    hp.Choice('optimizer', ['adam', 'sgd']), 'sparse_categorical_crossentropy', metrics=['accuracy']
  )
  return model

def raises(hp, image_size=224):
  raise RuntimeError('no GPU here\\nsecond line')

def not_compiled(hp, image_size=224):
  return _model(image_size)

def wrong_classes(hp, image_size=224):
  model = _model(image_size, outputs=3)
  model.compile('adam', 'sparse_categorical_crossentropy', metrics=['accuracy'])
  return model

def logits(hp, image_size=224):
  model = _model(image_size, activation=None)
  model.compile('adam', 'sparse_categorical_crossentropy', metrics=['accuracy'])
  return model

def no_accuracy(hp, image_size=224):
  model = _model(image_size)
  model.compile('adam', 'sparse_categorical_crossentropy')
  return model

def not_a_model(hp):
  return 'model'

NOT_A_FUNCTION = 3
'''


@pytest.fixture(scope='module')
def builders(tmp_path_factory):
  path = tmp_path_factory.mktemp('builders') / 'my_builders.py'
  path.write_text(textwrap.dedent(BUILDERS))
  return str(path)


class _Data:
  """A TrainingData of tiny images that records what fit asked for."""

  def __init__(self):
    self.asked = []
    self.cached_features = False
    self.feature_dim = None

  def train(self, batch_size, augment, view=None):
    import tensorflow as tf

    self.asked.append((batch_size, augment))
    x = np.zeros((12, 32, 32, 3), np.float32)
    return tf.data.Dataset.from_tensor_slices((x, np.arange(12) % 5)).batch(batch_size)

  def eval(self, batch_size, view=None):
    import tensorflow as tf

    x = np.zeros((4, 32, 32, 3), np.float32)
    return tf.data.Dataset.from_tensor_slices((x, np.arange(4))).batch(batch_size)

  def steps_per_epoch(self, batch_size, view=None):
    return None


def _hypermodel(reference, data=None, **options):
  config = ModuleConfig(image_size=32, hypermodel=reference, **options)
  return FlowerHyperModel(config, data or _Data(), num_classes=5)


def test_each_trial_fits_with_its_own_batch_size_on_cached_features(fn_args_for):
  import tensorflow_transform as tft

  fn_args = fn_args_for()
  config = ModuleConfig.from_custom_config(fn_args.custom_config)
  data = training_data.prepare(fn_args, config, tft.TFTransformOutput(fn_args.transform_output))
  assert data.cached_features
  trial = FlowerHyperModel(config, data, num_classes=5)
  seen = []
  for batch_size in (4, 16):
    hp = search_space.builtin().hyperparameters()
    hp.Fixed('batch_size', batch_size)
    head = trial.build(hp)
    fit = head.fit

    def recording_fit(x, validation_data, steps_per_epoch, **kwargs):
      seen.append(
        (next(iter(x))[0].shape[0], next(iter(validation_data))[0].shape[0], steps_per_epoch)
      )
      return fit(x, validation_data=validation_data, steps_per_epoch=steps_per_epoch, **kwargs)

    head.fit = recording_fit
    trial.fit(hp, head, epochs=1, verbose=0)
  # 30 training photos: at least MIN_STEPS_PER_EPOCH steps an epoch, whatever the batch.
  assert seen == [(4, 4, 50), (16, 10, 50)]


def test_a_trial_with_augmentation_trains_on_cached_augmented_copies(fn_args_for):
  import tensorflow_transform as tft

  fn_args = fn_args_for({'augment_copies': 2})
  config = ModuleConfig.from_custom_config(fn_args.custom_config)
  output = tft.TFTransformOutput(fn_args.transform_output)
  data = training_data.prepare(fn_args, config, output)
  zoom = Augmentation(zoom=True)  # A continuous random zoom: no copy is the photo itself.
  # One batch of an epoch's size: every row once (the training data repeats).
  augmented = next(iter(data.train(60, zoom)))[0].numpy()
  plain = next(iter(data.train(30, Augmentation())))[0].numpy()
  # 2 copies of 30 photos, none the plain features; the same steps per epoch.
  assert augmented.shape == (60, 1280) and plain.shape == (30, 1280)
  distance = np.abs(augmented[:, None, :] - plain[None, :, :]).max(axis=-1)
  assert distance.min() > 1e-4  # No augmented copy is a photo's own features.
  lines = []
  from modules.training import feature_cache

  again, _ = feature_cache.features_for(
    fn_args, config, output, 'train', fn_args.train_files, augment=zoom, echo=lines.append
  )
  shown = f'train ({config.backbone}, {config.image_size} px, zoom x2): 60 examples from'
  assert again.shape == (60, 1280) and shown in lines[0]


def test_without_cached_features_augmentation_draws_anew_each_epoch(fn_args_for):
  import tensorflow_transform as tft

  fn_args = fn_args_for({'feature_cache': False})
  config = ModuleConfig.from_custom_config(fn_args.custom_config)
  data = training_data.prepare(fn_args, config, tft.TFTransformOutput(fn_args.transform_output))
  assert not data.cached_features
  batches = data.train(30, Augmentation(rotation=True, zoom=True))
  first, second = (next(iter(batches))[0].numpy() for _ in range(2))
  plain = next(iter(data.train(30, Augmentation())))[0].numpy()
  assert first.shape == plain.shape == (30, 32, 32, 3)
  assert not np.allclose(first, second) and first.min() >= 0.0 and first.max() <= 1.0
  # Evaluation sees the photos as they are.
  evaluation = np.concatenate([x.numpy() for x, _ in data.eval(4)])
  assert evaluation.shape == (10, 32, 32, 3)


def test_a_user_builder_is_the_hypermodel_and_gets_classes_and_size(builders):
  trial = _hypermodel(f'{builders}:good')
  hp = keras_tuner.HyperParameters()
  built = trial.build(hp)
  assert built.input_shape == (None, 32, 32, 3) and built.output_shape == (None, 5)
  assert hp.values == {'units': 4}  # Its own declarations, as in keras-tuner.
  trial.fit(hp, built, epochs=1, verbose=0)
  assert trial.data.asked == [(32, Augmentation())]


def test_a_tutorial_builder_that_takes_only_hp(builders):
  hp = keras_tuner.HyperParameters()
  assert _hypermodel(f'{builders}:tutorial').build(hp).output_shape == (None, 5)


@pytest.mark.parametrize(
  'function,problem',
  [
    ('raises', 'it raised RuntimeError: no GPU here'),
    ('not_compiled', 'the model is not compiled: call model.compile('),
    ('wrong_classes', 'outputs shape [N, 3] but the data has 5 classes: end it with Dense(5, '),
    ('logits', 'outputs are not probabilities'),
    ('no_accuracy', "compiled without metrics=['accuracy']"),
    ('not_a_model', 'it returned str, not a keras.Model'),
  ],
)
def test_a_builder_that_breaks_the_contract_fails_the_first_build_in_one_line(
  builders, function, problem, tmp_path
):
  from modules import tuner as tuner_module

  trial = _hypermodel(f'{builders}:{function}')
  with pytest.raises(HypermodelError) as error:
    # keras-tuner builds once when the tuner is made: the search stops before any trial.
    tuner_module.make_tuner(trial.config, trial, directory=str(tmp_path))
  line = str(error.value)
  assert line.startswith(f'--hypermodel {builders}:{function}: ') and problem in line, line
  assert '\n' not in line
  assert isinstance(error.value, keras_tuner.errors.FatalError)  # No retries, no more trials.


@pytest.mark.parametrize(
  'reference,problem',
  [
    ('{builders}:missing', 'my_builders.py has no missing'),
    ('{builders}:NOT_A_FUNCTION', 'NOT_A_FUNCTION is a int, not a function'),
    ('/nowhere/my_module.py:build', 'no such file /nowhere/my_module.py'),
    ('no_such_module:build', 'cannot import no_such_module (ModuleNotFoundError: No module named'),
  ],
)
def test_a_builder_that_cannot_be_loaded_is_one_line(builders, reference, problem):
  reference = reference.format(builders=builders)
  with pytest.raises(HypermodelError, match=problem.replace('(', r'\(').replace(')', r'\)')):
    builder.load_builder(reference)


def test_a_file_name_the_builder_never_reads_is_refused(builders, tmp_path):
  space_file = tmp_path / 'space.yaml'
  space_file.write_text(
    'units: {type: int, min: 4, max: 6, default: 4}\n'
    'dropout: {type: float, min: 0.0, max: 0.5, default: 0.0}\n'
    'batch_size: {type: choice, values: [4, 8], default: 8}\n'
  )
  config = ModuleConfig(image_size=32, hypermodel=f'{builders}:good', search_space=str(space_file))
  space, fixed = search_space.for_module(config)
  assert fixed == []  # A user's builder gets no built-in defaults.
  with pytest.raises(search_space.SearchSpaceError) as error:
    space_check.check_space(space, config)
  assert str(error.value).startswith(
    f'--search-space {space_file}: dropout: {builders}:good does not read it (it reads units)'
  )


def test_the_builtin_head_reads_dropout_label_smoothing_and_momentum():
  hp = search_space.builtin().hyperparameters()
  hp.Fixed('dropout', 0.25)
  hp.Fixed('label_smoothing', 0.1)
  hp.values.update(optimizer='sgd')
  hp.Fixed('momentum', 0.45)
  head = model.build_head(hp, num_classes=4, feature_dim=6)
  assert head.get_layer('dropout').rate == 0.25
  assert head.layers[1].name == 'dropout'  # Before the hidden layer.
  assert float(head.optimizer.momentum) == pytest.approx(0.45)
  loss = head.loss
  assert isinstance(loss, model.SmoothedSparseCrossentropy) and loss.label_smoothing == 0.1
  # Smoothed targets: 1 - 0.1 + 0.1 / 4 for the right class, 0.1 / 4 for the others.
  probabilities = np.array([[0.7, 0.1, 0.1, 0.1]], np.float32)
  targets = np.array([0.925, 0.025, 0.025, 0.025])
  expected = -np.sum(targets * np.log(probabilities[0]))
  assert float(loss(np.array([0]), probabilities)) == pytest.approx(expected, rel=1e-4)


def test_fine_tune_layers_trains_only_the_top_backbone_layers():
  from modules.backbones import backbone

  layer = backbone.build_backbone('efficientnet-lite0', fine_tune=True, top_layers=2)
  assert sorted(v.name.split('/')[0] for v in layer.trainable_weights) == [
    'bn1_beta',
    'bn1_gamma',
    'conv_head_kernel',
  ]
  hp = search_space.builtin().hyperparameters()
  hp.Fixed('fine_tune_layers', 8)
  config = ModuleConfig(fine_tune=True)
  assert model.fine_tune_layers(hp, config) == 8
  assert model.fine_tune_layers(hp, ModuleConfig()) is None  # Frozen: not read.
