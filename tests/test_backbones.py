"""Backbones as a user names them: the pretrained default, fine-tuning it, bad --backbone values."""

import glob
import os
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from modules.backbones import backbone
from modules.model.model import build_model
from modules.module_config import ModuleConfig
from modules.search import search_space
from tests.conftest import REPO, read_examples
from tests.runs import run_local
from tfx_pipeline.local import cli


def test_default_backbone_is_the_pretrained_one():
  assert ModuleConfig().backbone == 'efficientnet-lite0'
  assert backbone.check('efficientnet-lite0', 64) == 1280


def test_the_backbone_line_names_every_view_a_search_trains_on(tmp_path, monkeypatch):
  """One line, each backbone at each size it sees; every view's backbone is loaded first."""
  from tfx_pipeline.local import runner

  loaded = []
  monkeypatch.setattr(backbone, 'check', lambda name, size: loaded.append((name, size)) or 1280)
  space = tmp_path / 'space.yaml'
  family = (
    'backbone: {type: choice, values: [efficientnet-lite0, efficientnet-lite1], '
    'default: efficientnet-lite0}\n'
  )
  sizes = 'image_size: {type: choice, values: [160, 192], default: 192}\n'

  def line(text, image_size):
    space.write_text(text)
    lines = []
    runner._check_backbone(
      ModuleConfig(search_space=str(space), image_size=image_size), lines.append
    )
    (only,) = lines
    return only

  assert line(family, 240) == (
    'backbone: searched among efficientnet-lite0 at 224 px, efficientnet-lite1 at 240 px, '
    'from images stored at 240 px (1280 features per image, frozen)'
  )
  loaded.clear()
  assert line(family + sizes, 240) == (
    'backbone: searched among efficientnet-lite0, efficientnet-lite1, each at 160/192 px, '
    'from images stored at 240 px (1280 features per image, frozen)'
  )
  assert sorted(loaded) == [
    (name, size) for name in ('efficientnet-lite0', 'efficientnet-lite1') for size in (160, 192)
  ]
  assert line(sizes, 192) == (
    'backbone: searched among efficientnet-lite0 at 160/192 px, from images stored at 192 px '
    '(1280 features per image, frozen)'
  )


def test_converted_backbone_is_cached_by_weights_hash(monkeypatch, tmp_path):
  monkeypatch.setenv(backbone.CACHE_ENV, str(tmp_path))
  folder = backbone.saved_model_dir('efficientnet-lite0')
  assert os.path.dirname(folder) == str(tmp_path)
  assert os.path.basename(folder).startswith('efficientnet-lite0-')
  assert os.path.exists(os.path.join(folder, 'saved_model.pb'))
  assert os.listdir(tmp_path) == [os.path.basename(folder)]  # No temporary folder left behind.


def _shared_split(shared_flowers, size):
  """Real photos at `size` px: 6 per class to train on, 4 per class to evaluate."""
  from modules.preprocessing import decode_and_resize

  examples = read_examples(os.path.join(shared_flowers, '*.tfrecord*'))
  images = decode_and_resize(
    tf.constant([e['image/encoded'].bytes_list.value[0] for e in examples]), size
  ).numpy()
  labels = np.array([e['image/class/label'].int64_list.value[0] for e in examples])
  seen = {}
  train = np.array(
    [seen.setdefault(c, []).append(i) or len(seen[c]) <= 6 for i, c in enumerate(labels)]
  )
  return (images[train], labels[train]), (images[~train], labels[~train])


def _batchnorm_statistics(model):
  layer = model.get_layer('backbone')
  return [v.numpy().copy() for v in layer._module.non_trainable_variables]


def test_fine_tuning_keeps_batchnorm_statistics_and_accuracy(shared_flowers):
  size = 160
  (x, y), (x_eval, y_eval) = _shared_split(shared_flowers, size)
  keras.utils.set_random_seed(0)
  model = build_model(
    search_space.defaults(), ModuleConfig(image_size=size, fine_tune=True), num_classes=5
  )
  backbone_layer = model.get_layer('backbone')
  backbone_weights = [
    v for v in model.trainable_variables if any(v is a for a in backbone_layer._adopted)
  ]
  # Frozen first: train only the head, as the feature cache does.
  backbone_layer.trainable = False
  model.compile(
    optimizer=keras.optimizers.Adam(1e-3),
    loss='sparse_categorical_crossentropy',
    metrics=['accuracy'],
  )
  model.fit(x, y, epochs=15, batch_size=10, verbose=0)
  frozen = model.evaluate(x_eval, y_eval, verbose=0)[1]
  statistics = _batchnorm_statistics(model)
  before = backbone_weights[0].numpy().copy()

  # Then one epoch of fine-tuning at the search's smallest learning rate, in small batches.
  backbone_layer.trainable = True
  space = {hp.name: hp for hp in search_space.defaults().space}
  smallest = min(space['learning_rate'].values)
  model.compile(
    optimizer=keras.optimizers.Adam(smallest),
    loss='sparse_categorical_crossentropy',
    metrics=['accuracy'],
  )
  model.fit(x, y, epochs=1, batch_size=4, verbose=0)
  fine_tuned = model.evaluate(x_eval, y_eval, verbose=0)[1]
  print(f'eval accuracy frozen {frozen:.3f}, after one fine-tuning epoch {fine_tuned:.3f}')

  assert frozen >= 0.6  # Real features: far above chance (0.2) on photos not trained on.
  assert not np.allclose(backbone_weights[0].numpy(), before)  # The weights did train...
  for kept, now in zip(statistics, _batchnorm_statistics(model)):  # ...the statistics did not.
    np.testing.assert_array_equal(kept, now)
  assert fine_tuned >= frozen - 0.1


@pytest.fixture(scope='module')
def fixed_size_backbone(tmp_path_factory):
  """A SavedModel feature extractor exported for 224x224 images only."""
  inputs = keras.Input((224, 224, 3))
  model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(inputs))
  path = str(tmp_path_factory.mktemp('fixed224'))
  model.export(path, verbose=False)
  return path


@pytest.fixture(scope='module')
def feature_map_backbone(tmp_path_factory):
  """A SavedModel that maps images to a feature map, not a feature vector."""
  inputs = keras.Input((None, None, 3))
  model = keras.Model(inputs, keras.layers.Conv2D(4, 3)(inputs))
  path = str(tmp_path_factory.mktemp('featuremap'))
  model.export(path, verbose=False)
  return path


@pytest.mark.parametrize(
  'which, message',
  [
    ('fixed', 'takes 224x224 images, but --image-size is 64: pass --image-size 224.'),
    ('feature_map', 'maps images to shape [1, 62, 62, 4], not a [N, D] feature vector'),
    ('not_saved_model', 'no SavedModel at'),
    ('missing', 'no such folder'),
  ],
)
def test_bad_backbone_is_one_line_before_any_component(
  which, message, fixed_size_backbone, feature_map_backbone, tiny_data, tmp_path, capsys
):
  path = {
    'fixed': fixed_size_backbone,
    'feature_map': feature_map_backbone,
    'not_saved_model': str(tmp_path),
    'missing': str(tmp_path / 'nope'),
  }[which]
  root = tmp_path / 'root'
  rc = cli.main(
    [
      '--data-root',
      tiny_data,
      '--pipeline-root',
      str(root),
      '--backbone',
      path,
      '--image-size',
      '64',
    ]
  )
  out, err = capsys.readouterr()
  assert rc == 2, out + err
  # One line, and where the run's log is.
  error, log = err.strip().splitlines()
  assert error.startswith(f'error: --backbone {path}') and message in error
  assert re.fullmatch(rf'log: {root}/logs/\S+\.log', log) and 'Traceback' not in err
  assert not (root / 'metadata.sqlite').exists()  # Nothing ran.


OFFLINE = {
  'HTTP_PROXY': 'http://127.0.0.1:9',
  'HTTPS_PROXY': 'http://127.0.0.1:9',
  'http_proxy': 'http://127.0.0.1:9',
  'https_proxy': 'http://127.0.0.1:9',
  'NO_PROXY': '',
  'no_proxy': '',
}


def _held_out_layout(shared_flowers, folder):
  """The real photos in the published layout: 2 per class held out as validation; those as JPEGs."""
  examples = read_examples(os.path.join(shared_flowers, '*.tfrecord*'))
  os.makedirs(folder)
  held, jpegs, seen = [], [], {}
  with tf.io.TFRecordWriter(
    os.path.join(folder, 'image_classification_builder-train.tfrecord-00000-of-00001')
  ) as train:
    for e in examples:
      name = e['image/class/text'].bytes_list.value[0].decode()
      record = tf.train.Example(features=tf.train.Features(feature=e)).SerializeToString()
      if len(seen.setdefault(name, [])) < 2:
        seen[name].append(e)
        held.append(record)
        path = os.path.join(os.path.dirname(folder), f'{name}-{len(seen[name])}.jpg')
        with open(path, 'wb') as f:
          f.write(e['image/encoded'].bytes_list.value[0])
        jpegs.append((path, name))
      else:
        train.write(record)
  with tf.io.TFRecordWriter(
    os.path.join(folder, 'image_classification_builder-validation.tfrecord-00000-of-00001')
  ) as validation:
    for record in held:
      validation.write(record)
  return jpegs


@pytest.mark.pipeline
def test_default_run_learns_real_photos_offline_and_predicts(shared_flowers, tmp_path, capsys):
  """The default run, no network, a fresh converted-model cache: real photos are learnt."""
  jpegs = _held_out_layout(shared_flowers, str(tmp_path / 'flowers'))
  env = {**OFFLINE, backbone.CACHE_ENV: str(tmp_path / 'cache')}
  # The network really is closed to these processes: a TF-Hub handle cannot be fetched.
  probe = run_local(
    '--data-root',
    str(tmp_path / 'flowers'),
    '--pipeline-root',
    str(tmp_path / 'hub'),
    '--backbone',
    'https://tfhub.dev/google/imagenet/resnet_v2_50/feature_vector/4',
    extra_env=env,
  )
  assert probe.rc == 2 and 'cannot fetch it' in probe.err

  root = str(tmp_path / 'root')
  done = run_local('--data-root', str(tmp_path / 'flowers'), '--pipeline-root', root, extra_env=env)
  assert done.rc == 0, done.out[-3000:] + done.err[-3000:]
  assert 'backbone: efficientnet-lite0 (1280 features per image, frozen)' in done.out
  accuracy = float(done.out.split('eval accuracy: ')[1].split()[0])
  assert accuracy >= 0.5  # 10 photos it never trained on; chance is 0.2.
  assert 'pushed model: ' in done.out
  # No test shards here: the figure is the one the search picked by, and the run says so.
  (optimism,) = [line for line in done.lines if line.startswith('  measured on the eval split')]
  assert optimism.endswith('optimistic for new photos (add test shards for an unbiased figure)')

  # The pushed model holds all it needs: predicting in this process reads nothing else.
  capsys.readouterr()
  assert cli.main(['predict', *[p for p, _ in jpegs], '--pipeline-root', root]) == 0
  lines = {
    line.split(': ')[0]: line.split(': ')[1]
    for line in capsys.readouterr().out.splitlines()
    if line.endswith('%')
  }
  right = 0
  for path, truth in jpegs:
    name, probability = lines[path].split()
    assert name in {t for _, t in jpegs} and 0 < float(probability.rstrip('%')) <= 100
    right += name == truth
  assert right >= 5


@pytest.mark.pipeline
def test_a_search_across_the_family_computes_each_backbones_features_once(tiny_data, tmp_path):
  """`backbone` as a choice: images stored once at the largest size, each trial on its own."""
  from tests import tiny

  space = tmp_path / 'family.yaml'
  space.write_text(
    'backbone: {type: choice, values: [efficientnet-lite0, efficientnet-lite1], '
    'default: efficientnet-lite0}\n'
  )
  flags = tiny.flags(image_size=None, tuner='random', max_epochs=1, epochs=1)
  root = str(tmp_path / 'root')
  done = run_local(
    *('--data-root', tiny_data, '--pipeline-root', root, '--search-space', str(space)),
    *(*flags, '--accuracy-threshold', '0'),
    extra_env=OFFLINE,
    cold=True,  # What it prints before its log is part of the test.
  )
  assert done.rc == 0, done.out[-3000:] + done.err[-3000:]
  assert done.err == ''  # Sizing the images from the space imports no TensorFlow before the log.
  assert done.line('backbone: ') == (
    'backbone: searched among efficientnet-lite0 at 224 px, efficientnet-lite1 at 240 px, '
    'from images stored at 240 px (1280 features per image, frozen)'
  )
  tried = sorted(re.findall(r'^trial \d/2: backbone=(\S+) ', done.out, re.M))
  assert tried == ['efficientnet-lite0', 'efficientnet-lite1']
  # One BackboneFeatures step ran both backbones over both splits; every trial and the
  # Trainer read its records, and nothing computed features of its own.
  assert len(re.findall(r'^\[\d+/\d+\] BackboneFeatures done in', done.out, re.M)) == 1
  (step,) = glob.glob(os.path.join(root, 'BackboneFeatures', 'features', '*'))
  from modules.training import feature_records

  summary = feature_records.read_summary(step)
  assert summary.views == (('efficientnet-lite0', 224), ('efficientnet-lite1', 240))
  assert summary.dims == (1280, 1280) and sum(summary.counts.values()) == 40
  assert 'feature cache:' not in done.log()

  # The served model takes the stored 240 px images and resizes them for its backbone.
  from tfx_pipeline.local import predict

  pushed = done.line('pushed model: ')[len('pushed model: ') :]
  shards = sorted(glob.glob(os.path.join(tiny_data, '*-test.tfrecord-*')))
  photos = [e for _, e, _ in predict.iter_photos(shards[:1], 2)]
  served = tf.saved_model.load(os.path.join(REPO, pushed))
  assert served.model_input(tf.constant(photos)).shape == (2, 240, 240, 3)
  probabilities = served.signatures['serving_jpeg'](images=tf.constant(photos))['probabilities']
  np.testing.assert_allclose(probabilities.numpy().sum(-1), 1.0, atol=1e-5)
