"""Shared fixtures: tiny flower data, the one real run on it, Transform output, FnArgs for the UDFs.

Tests marked `pipeline` run the pipeline or its components; short modules without one report first.
"""

import functools
import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_FLOWERS = os.path.join(os.path.dirname(REPO), 'shared', 'flowers')
# The pipeline's components, in order; those before the Tuner do not depend on search options.
UPSTREAM = ('ImportExampleGen', 'StatisticsGen', 'SchemaGen', 'ExampleValidator', 'Transform')
# BackboneFeatures: with the default frozen backbone (tests/tiny.py's too).
COMPONENTS = UPSTREAM + (
  'BackboneFeatures',
  'Tuner',
  'Trainer',
  'Evaluator',
  'TFLiteExport',
  'Pusher',
)
# A run with --no-tflite (tests/tiny.py's default).
WITHOUT_TFLITE = tuple(c for c in COMPONENTS if c != 'TFLiteExport')
# The Evaluator's baseline, TFX's resolver node: it runs in every run (it has no cache).
RESOLVER = 'latest_blessed_model_resolver'


def pytest_configure(config):
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  # Under pytest-xdist each worker's TensorFlow (and every run it starts) gets its share
  # of the cores, as a parallel search's workers do (tfx_pipeline/parallel/pool.py): TF
  # sizes its pools to every core and spins idle threads, which two workers then pay twice.
  workers = int(os.environ.get('PYTEST_XDIST_WORKER_COUNT', '1'))
  if workers > 1:
    threads = str(max(1, (os.cpu_count() or 1) // workers))
    for name in ('TF_NUM_INTRAOP_THREADS', 'TF_NUM_INTEROP_THREADS', 'OMP_NUM_THREADS'):
      os.environ.setdefault(name, threads)


# The longest modules, longest first (seconds on one worker of `make test`, measured):
# pytest-xdist's loadfile hands modules out in collection order (`make test` passes
# --no-loadscope-reorder; its default orders them by test count), so a long module handed
# out last leaves the other worker idle (77 s of a 12.5-minute suite). Short modules without
# a `pipeline` test go first, then these, then the other `pipeline` modules.
LONGEST_FIRST = (
  'test_readme.py',  # 170
  'test_tiny_run.py',  # 167
  'test_backbones.py',  # 145
  'test_search_cli.py',  # 90
  'test_rehearsal.py',  # 88
  'test_interrupt_runs.py',  # 54
  'test_hypermodel_e2e.py',  # 44
  'test_tuning_checkpoints.py',  # 42
  'test_fine_tuning.py',  # 42
  'test_efficientnet_lite.py',  # 40
  'test_tuner.py',  # 36
  'test_parallel_tuning.py',  # 34
  'test_pruning.py',  # 33
  'test_beam_workers.py',  # 31
  'test_own_photos_e2e.py',  # 27
  'test_tuning_progress.py',  # 26
)


def pytest_collection_modifyitems(items):
  """Short modules without a `pipeline` test first, then LONGEST_FIRST, then the others.

  Within a module its unit tests come first, then those marked `pipeline` (in
  their own order: a stable sort). Under pytest-xdist (`make test` runs `-n auto
  --dist loadfile`) a module's tests run on one worker, in this order: a
  module-scoped fixture (a real run, a compiled pipeline) is built once, and runs
  on one pipeline root follow each other. A session fixture is built once per
  worker that uses it.
  """
  pipeline = lambda item: item.get_closest_marker('pipeline') is not None  # noqa: E731
  runs_pipeline = {item.path.name for item in items if pipeline(item)}

  def rank(item):
    name = item.path.name
    if name in LONGEST_FIRST:
      return 1 + LONGEST_FIRST.index(name)
    return len(LONGEST_FIRST) + 1 if name in runs_pipeline else 0

  items.sort(key=lambda item: (rank(item), pipeline(item)))


@pytest.fixture(autouse=True)
def warm_starts(request):
  """A test that runs the pipeline starts its processes warm (tests/runs.py)."""
  if request.node.get_closest_marker('pipeline') is not None:
    from tests import runs

    runs.warm_address()


@pytest.fixture(scope='session')
def tiny_data(tmp_path_factory):
  """A tiny synthetic flower folder in the published layout (5 classes, 6 + 2 + 2 photos each)."""
  from data import make_sample

  out = str(tmp_path_factory.mktemp('tiny_data'))
  make_sample.main(
    ['--out', out, '--train-per-class', '6', '--eval-per-class', '2', '--test-per-class', '2']
  )
  return out


@pytest.fixture(scope='session')
def tiny_run(tiny_data, tmp_path_factory):
  """The tiny configuration's real run on the tiny data, once for every test that reads it.

  Tests that only read what it recorded (console lines, log, summary, pushed
  model, search folder) share it; a test that runs again on its pipeline root
  reads the run's records, never the root's latest state.
  """
  from tests import runs

  return runs.tiny_run(tiny_data, str(tmp_path_factory.mktemp('tiny_run') / 'root'))


@pytest.fixture(scope='session')
def shared_flowers():
  """The real published flower shard next to the project, when present."""
  if not os.path.isdir(SHARED_FLOWERS) or not os.listdir(SHARED_FLOWERS):
    pytest.skip(f'real flower shard not present at {SHARED_FLOWERS} (../shared/flowers)')
  return SHARED_FLOWERS


def toy_hypermodel(hp):
  """A tiny binary classifier over 2 features: searches that finish in seconds."""
  import keras

  model = keras.Sequential(
    [
      keras.Input((2,)),
      keras.layers.Dense(hp.Int('units', 1, 64), activation='relu'),
      keras.layers.Dense(1, activation='sigmoid'),
    ]
  )
  model.compile('sgd', 'binary_crossentropy', metrics=['accuracy'])
  return model


def read_examples(pattern):
  """Parsed tf.train.Example feature maps from TFRecord files matching `pattern`."""
  import tensorflow as tf

  return [
    tf.train.Example.FromString(r.numpy()).features.feature
    for r in tf.data.TFRecordDataset(tf.io.gfile.glob(pattern))
  ]


def _raw_rows(data_root, split, raw_spec):
  """The `split` records of a published-layout folder as tf.Transform's instance dicts."""
  import tensorflow as tf

  return [
    {
      k: [f[k].bytes_list.value[0] if v.dtype == tf.string else f[k].int64_list.value[0]]
      for k, v in raw_spec.items()
    }
    for f in read_examples(os.path.join(data_root, f'*-{split}.tfrecord-*'))
  ]


@pytest.fixture(scope='session')
def transformed(tiny_data, tmp_path_factory):
  """Runs the real preprocessing_fn with tf.Transform over the tiny data.

  Returns (transform_output_dir, {'train': [files], 'eval': [files]}, module_config).
  """
  import tensorflow as tf
  import tensorflow_transform as tft
  import tensorflow_transform.beam as tft_beam
  from tensorflow_transform.tf_metadata import dataset_metadata, metadata_io

  from modules import features
  from modules.preprocessing import preprocessing_fn
  from tests import tiny

  # The default backbone (efficientnet-lite0, frozen: cached features); tests of the
  # small CNN pass backbone='cnn'.
  config = tiny.MODULE
  out = str(tmp_path_factory.mktemp('transformed'))
  raw_spec = {
    features.IMAGE_KEY: tf.io.FixedLenFeature([1], tf.string),
    features.LABEL_KEY: tf.io.FixedLenFeature([1], tf.int64),
    features.LABEL_TEXT_KEY: tf.io.FixedLenFeature([1], tf.string),
  }
  raw_metadata = dataset_metadata.DatasetMetadata.from_feature_spec(raw_spec)

  files = {}
  with tft_beam.Context(temp_dir=os.path.join(out, 'tmp'), force_tf_compat_v1=False):
    (train, train_meta), transform_fn = (
      _raw_rows(tiny_data, 'train', raw_spec),
      raw_metadata,
    ) | tft_beam.AnalyzeAndTransformDataset(
      functools.partial(preprocessing_fn, custom_config=config.to_custom_config())
    )
    validation = _raw_rows(tiny_data, 'validation', raw_spec)
    evaluation, _ = ((validation, raw_metadata), transform_fn) | tft_beam.TransformDataset()
    _ = transform_fn | tft_beam.WriteTransformFn(out)
  # TFX's Transform also stores the raw schema; serving reads the raw feature spec from it.
  metadata_io.write_metadata(raw_metadata, os.path.join(out, 'metadata'))
  coder = tft.coders.ExampleProtoCoder(train_meta.schema)
  for split, data in (('train', train), ('eval', evaluation)):
    path = os.path.join(out, f'{split}.tfrecord')
    with tf.io.TFRecordWriter(path) as writer:
      for row in data:
        writer.write(coder.encode(row))
    files[split] = [path]
  return out, files, config


def data_accessor():
  """A DataAccessor like the one TFX hands to tuner_fn/run_fn, for plain TFRecords."""
  from tfx import v1 as tfx
  from tfx_bsl.public import tfxio

  def tf_dataset_factory(file_pattern, options, schema):
    return tfxio.TFExampleRecord(file_pattern=file_pattern, schema=schema).TensorFlowDataset(
      options
    )

  return tfx.components.DataAccessor(
    tf_dataset_factory=tf_dataset_factory, record_batch_factory=None, data_view_decode_fn=None
  )


@pytest.fixture
def fn_args_for(transformed, tmp_path):
  """Builds FnArgs over the transformed tiny data, as the Tuner/Trainer executors do."""
  from tfx import v1 as tfx

  transform_dir, files, config = transformed

  def make(config_overrides=None, hyperparameters=None, train_steps=None, paths=None):
    import dataclasses

    from modules.module_config import RunPaths

    cfg = dataclasses.replace(config, **(config_overrides or {}))
    return tfx.components.FnArgs(
      train_files=files['train'],
      eval_files=files['eval'],
      transform_graph_path=transform_dir,
      transform_output=transform_dir,
      working_dir=str(tmp_path / 'work'),
      serving_model_dir=str(tmp_path / 'serving'),
      model_run_dir=str(tmp_path / 'run'),
      data_accessor=data_accessor(),
      custom_config={**cfg.to_custom_config(), **(paths or RunPaths()).to_custom_config()},
      hyperparameters=hyperparameters,
      train_steps=train_steps,
      eval_steps=None,
    )

  return make
