"""The Vertex AI runner: the compiled JSON, the jobs it starts, strategy choice, flag errors.

Everything runs offline with no credentials: the pipeline is compiled, read
back, handed to aiplatform's PipelineJob and to TFX's own cloud executors,
stopping short of any call to Google Cloud.
"""

import importlib
import json
import os
import subprocess
import sys
import types

import pytest

from tests.conftest import COMPONENTS, REPO, RESOLVER
from tfx_pipeline.vertex import runner as vertex_runner

PROJECT, REGION = 'demo-project', 'europe-west4'
ROOT = 'gs://demo-bucket/flower-tuner'
IMAGE = 'europe-west4-docker.pkg.dev/demo-project/flower-tuner/flower-tuner:test'
SERVICE_ACCOUNT = 'pipelines@demo-project.iam.gserviceaccount.com'
REQUIRED = [
  '--project',
  PROJECT,
  '--region',
  REGION,
  '--pipeline-root',
  ROOT,
  '--data-root',
  'gs://demo-bucket/flowers',
]
TPU_TRAINER = [
  '--trainer-machine-type',
  'cloud-tpu',
  '--trainer-accelerator-type',
  'TPU_V3',
  '--trainer-accelerator-count',
  '8',
]


@pytest.fixture(scope='module')
def compiled(tmp_path_factory):
  """run_vertex.py --compile-only with a TPU Trainer, 4 parallel trials on GPU machines."""
  output = str(tmp_path_factory.mktemp('vertex') / 'pipeline.json')
  with pytest.MonkeyPatch.context() as mp:
    mp.setattr(vertex_runner, '_quiet', lambda verbose: None)  # Leaves other tests' logging be.
    rc = vertex_runner.main(
      [
        '--compile-only',
        *REQUIRED,
        *TPU_TRAINER,
        '--output',
        output,
        '--image',
        IMAGE,
        '--service-account',
        SERVICE_ACCOUNT,
        '--num-parallel-trials',
        '4',
        '--tuner-machine-type',
        'n1-standard-16',
        '--tuner-accelerator-type',
        'NVIDIA_TESLA_T4',
        '--tuner-accelerator-count',
        '1',
        '--dataflow-max-workers',
        '6',
        '--beam-arg=--disk_size_gb=50',
        '--tuner',
        'random',
        '--max-trials',
        '12',
      ]
    )
  assert rc == 0
  with open(output) as f:
    return output, json.load(f)


def _tasks(spec):
  return spec['pipelineSpec']['root']['dag']['tasks']


# KubeflowV2DagRunner compiles the latest-blessed-model resolver into two query tasks.
RESOLVER_TASKS = {f'{RESOLVER}-model-blessing-resolver', f'{RESOLVER}-model-resolver'}


def _executor(spec, task):
  component = _tasks(spec)[task]['componentRef']['name']
  label = spec['pipelineSpec']['components'][component]['executorLabel']
  return spec['pipelineSpec']['deploymentSpec']['executors'][label]['container']


def _parameters(spec, task):
  """A task's execution properties, as TFX compiled them (JSON-encoded protos and dicts)."""
  return {
    name: next(iter(p['runtimeValue']['constantValue'].values()))
    for name, p in _tasks(spec)[task]['inputs']['parameters'].items()
  }


def _custom_config(spec, task):
  return json.loads(_parameters(spec, task)['custom_config'])


def test_every_step_runs_in_the_project_image(compiled):
  _, spec = compiled
  assert set(_tasks(spec)) == set(COMPONENTS) | RESOLVER_TASKS
  for task in COMPONENTS:
    container = _executor(spec, task)
    assert container['image'] == IMAGE
    assert (
      container['command'][-1] == 'tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor'
    )
  assert spec['runtimeConfig']['gcsOutputDirectory'] == ROOT
  # The cloud flavours start custom jobs (TFX's executors, which also pass the features
  # artifact on); the rest are the standard executors.
  from tfx.extensions.google_cloud_ai_platform.trainer import executor as trainer_executor
  from tfx.extensions.google_cloud_ai_platform.tuner import executor as tuner_executor

  from tfx_pipeline.vertex import components

  assert issubclass(components.TunerExecutor, tuner_executor.Executor)
  assert issubclass(components.TrainerExecutor, trainer_executor.GenericExecutor)
  for task, executor in (('Tuner', 'TunerExecutor'), ('Trainer', 'TrainerExecutor')):
    assert f'tfx_pipeline.vertex.components.{executor}' in ' '.join(_executor(spec, task)['args'])


def test_the_features_step_runs_on_dataflow_and_feeds_the_tuner_and_trainer(compiled):
  _, spec = compiled
  tasks = _tasks(spec)
  for task in ('Tuner', 'Trainer'):
    assert tasks[task]['inputs']['artifacts']['features']['taskOutputArtifact'] == {
      'outputArtifactKey': 'features',
      'producerTask': 'BackboneFeatures',
    }
  assert json.loads(_parameters(spec, 'BackboneFeatures')['views']) == [['efficientnet-lite0', 224]]
  assert 'tfx_pipeline.backbone_features.Executor' in ' '.join(
    _executor(spec, 'BackboneFeatures')['args']
  )


def test_evaluator_compares_with_the_latest_blessed_model(compiled):
  """The Evaluator's baseline is what Vertex finds: the model of the latest blessing."""
  _, spec = compiled
  tasks = _tasks(spec)
  baseline = tasks['Evaluator']['inputs']['artifacts']['baseline_model']['taskOutputArtifact']
  assert baseline == {'outputArtifactKey': 'model', 'producerTask': f'{RESOLVER}-model-resolver'}
  model_query = tasks[f'{RESOLVER}-model-resolver']['inputs']['artifacts']['input']
  assert model_query['taskOutputArtifact']['producerTask'] == f'{RESOLVER}-model-blessing-resolver'
  executors = spec['pipelineSpec']['deploymentSpec']['executors']
  queries = {
    label: executor['resolver']['outputArtifactQueries']
    for label, executor in executors.items()
    if 'resolver' in executor
  }
  blessings = queries[f'{RESOLVER}-model-blessing-resolver_executor']['model_blessing']
  assert (
    'tfx.ModelBlessing' in blessings['filter'] and 'blessed.number_value=1' in blessings['filter']
  )
  models = queries[f'{RESOLVER}-model-resolver_executor']['model']
  assert 'tfx.Model' in models['filter'] and "metadata['current_model_id']" in models['filter']
  gate = json.loads(_parameters(spec, 'Evaluator')['eval_config'])['metrics_specs'][0]['metrics']
  (accuracy,) = [m for m in gate if m['class_name'] == 'SparseCategoricalAccuracy']
  threshold = accuracy['per_slice_thresholds'][0]['threshold']
  assert set(threshold) == {'value_threshold', 'change_threshold'}


def test_tuner_runs_parallel_trials_on_a_chief_and_workers(compiled):
  _, spec = compiled
  assert json.loads(_parameters(spec, 'Tuner')['tune_args']) == {'num_parallel_trials': 4}
  config = _custom_config(spec, 'Tuner')
  assert config['ai_platform_enable_vertex'] is True
  assert config['ai_platform_vertex_region'] == REGION
  assert config['paths']['shared_trials_dir'] == ROOT + '/tuner_trials'
  assert config['tuner'] == 'random' and config['max_trials'] == 12  # ModuleConfig rides along.
  job = config['ai_platform_tuning_args']
  assert job['project'] == PROJECT
  assert job['job_spec']['service_account'] == SERVICE_ACCOUNT
  chief, workers = job['job_spec']['worker_pool_specs']
  assert (chief['replica_count'], workers['replica_count']) == (1, 3)
  for pool in (chief, workers):
    assert pool['machine_spec'] == {
      'machine_type': 'n1-standard-16',
      'accelerator_type': 'NVIDIA_TESLA_T4',
      'accelerator_count': 1,
    }
    assert pool['container_spec']['image_uri'] == IMAGE
    assert {'name': 'TF_USE_LEGACY_KERAS', 'value': '0'} in pool['container_spec']['env']


def test_trainer_job_asks_for_a_tpu(compiled):
  _, spec = compiled
  config = _custom_config(spec, 'Trainer')
  assert config['ai_platform_enable_vertex'] is True
  assert config['ai_platform_vertex_region'] == REGION
  (pool,) = config['ai_platform_training_args']['job_spec']['worker_pool_specs']
  assert pool['machine_spec'] == {
    'machine_type': 'cloud-tpu',
    'accelerator_type': 'TPU_V3',
    'accelerator_count': 8,
  }
  assert pool['replica_count'] == 1
  assert pool['container_spec']['image_uri'] == IMAGE
  assert {'name': 'TF_USE_LEGACY_KERAS', 'value': '0'} in pool['container_spec']['env']


def _custom_jobs(spec, monkeypatch):
  """custom_job(executor class, task): the CustomJob TFX's cloud executor builds for a task.

  TFX's `start_cloud_training` is replaced by one that keeps its arguments, and
  the job client opens no connection: building the job needs none.
  """
  from google.cloud import aiplatform_v1
  from tfx.extensions.google_cloud_ai_platform import runner, training_clients

  started = {}

  def start_cloud_training(
    input_dict,
    output_dict,
    exec_properties,
    executor_class_path,
    job_args,
    job_id,
    job_labels=None,
    enable_vertex=False,
    vertex_region=None,
  ):
    started.update(
      exec_properties=exec_properties,
      executor_class_path=executor_class_path,
      job_args=dict(job_args),
      enable_vertex=enable_vertex,
      region=vertex_region,
    )

  monkeypatch.setattr(runner, 'start_cloud_training', start_cloud_training)
  monkeypatch.setattr(training_clients.VertexJobClient, 'create_client', lambda self: None)

  def custom_job(executor_cls, task, features_uri):
    from tfx.types import standard_artifacts

    started.clear()
    features = standard_artifacts.Examples()
    features.uri = features_uri
    executor_cls().Do({'features': [features]}, {}, _parameters(spec, task))
    assert started['enable_vertex'] and started['region'] == REGION
    job_args = started['job_args']
    assert job_args.pop('project') == PROJECT  # What runner.start_cloud_training does.
    job = training_clients.VertexJobClient(REGION).create_training_job(
      {}, {}, started['exec_properties'], started['executor_class_path'], job_args, None, None
    )
    return aiplatform_v1.CustomJob(job)  # Raises on any field Vertex would not accept.

  return custom_job


def test_tfx_cloud_executors_start_the_configured_vertex_jobs(compiled, monkeypatch):
  """Feeds the compiled properties to TFX's cloud executors; checks the CustomJobs they build."""
  from google.cloud import aiplatform_v1

  _, spec = compiled
  custom_job = _custom_jobs(spec, monkeypatch)
  from modules.training import feature_records
  from tfx_pipeline.vertex import components

  def features_uri(job):
    (pool, *_) = job.job_spec.worker_pool_specs
    command = list(pool.container_spec.command)  # TFX's run_executor, with its flags.
    properties = json.loads(command[command.index('--exec-properties') + 1])
    return json.loads(properties['custom_config'])[feature_records.CUSTOM_CONFIG_KEY]

  features = f'{ROOT}/BackboneFeatures/features/7'
  tuner_job = custom_job(components.TunerExecutor, 'Tuner', features)
  # The job's tuner_fn reads the step's artifact.
  assert features_uri(tuner_job) == features
  pools = tuner_job.job_spec.worker_pool_specs
  # TFX rewrites pool 1 when it disagrees with num_parallel_trials; it agrees.
  assert [p.replica_count for p in pools] == [1, 3]
  assert pools[0].machine_spec.accelerator_type == aiplatform_v1.AcceleratorType.NVIDIA_TESLA_T4
  assert tuner_job.job_spec.service_account == SERVICE_ACCOUNT

  trainer_job = custom_job(components.TrainerExecutor, 'Trainer', features)
  assert features_uri(trainer_job) == features
  (pool,) = trainer_job.job_spec.worker_pool_specs
  assert pool.machine_spec.machine_type == 'cloud-tpu'
  assert pool.machine_spec.accelerator_type == aiplatform_v1.AcceleratorType.TPU_V3
  assert pool.machine_spec.accelerator_count == 8
  assert pool.container_spec.image_uri == IMAGE
  assert list(pool.container_spec.command[:3]) == ['python', '-m', 'tfx.scripts.run_executor']
  assert dict((e.name, e.value) for e in pool.container_spec.env) == {'TF_USE_LEGACY_KERAS': '0'}


def test_each_split_keeps_its_job_in_the_compiled_pipeline(compiled):
  """train fits, eval selects and stops early, test is the Evaluator's alone."""
  _, spec = compiled
  splits = json.loads(_parameters(spec, 'ImportExampleGen')['input_config'])['splits']
  assert [(s['name'], s['pattern']) for s in splits] == [
    (name, f'image_classification_builder-{shards}.tfrecord-*')
    for name, shards in (('train', 'train'), ('eval', 'validation'), ('test', 'test'))
  ]
  assert json.loads(_parameters(spec, 'Transform')['splits_config']) == {
    'analyze': ['train'],
    'transform': ['train', 'eval'],
  }
  assert json.loads(_parameters(spec, 'Evaluator')['example_splits']) == ['test']


@pytest.mark.parametrize(
  'flags, evaluated',
  [([], 'test'), (['--no-test-split'], 'eval'), (['--split-by-hash'], 'test')],
)
def test_split_flags_declare_the_layout_compiling_cannot_list(flags, evaluated):
  from tfx_pipeline.vertex import data_splits

  args = vertex_runner.parser().parse_args(['--compile-only', *REQUIRED, *flags])
  config, _ = vertex_runner.settings_from_args(args)
  layout = data_splits.layout_from_args(config, args)
  assert layout.evaluated_split == evaluated
  names = [s.name for s in layout.input_config.splits]
  if layout.output_config:
    names = [s.name for s in layout.output_config.split_config.splits]
  assert names == ['train', 'eval'] + (['test'] if evaluated == 'test' else [])


def test_beam_steps_run_on_dataflow(compiled):
  _, spec = compiled
  for task in ('ImportExampleGen', 'StatisticsGen', 'Transform', 'BackboneFeatures', 'Evaluator'):
    args = _executor(spec, task)['args']
    for expected in (
      '--runner=DataflowRunner',
      f'--project={PROJECT}',
      f'--region={REGION}',
      f'--temp_location={ROOT}/beam_tmp',
      '--max_num_workers=6',
      f'--sdk_container_image={IMAGE}',
      f'--service_account_email={SERVICE_ACCOUNT}',
      '--disk_size_gb=50',
    ):
      assert expected in args, (task, expected)


def test_user_code_is_named_by_importable_dotted_paths(compiled):
  _, spec = compiled
  paths = {'Transform': 'preprocessing_fn', 'Tuner': 'tuner_fn', 'Trainer': 'run_fn'}
  for task, name in paths.items():
    dotted = _parameters(spec, task)[name]
    assert dotted == f'modules.{"preprocessing" if task == "Transform" else task.lower()}.{name}'
    module, _, fn = dotted.rpartition('.')
    assert callable(getattr(importlib.import_module(module), fn))
    # No module_file: nothing had to be uploaded to compile.
    assert 'module_file' not in _parameters(spec, task)


def test_the_compiled_json_makes_a_pipeline_job(compiled):
  """aiplatform.PipelineJob reads the template as for .submit(); creating it sends nothing."""
  import dataclasses

  from google.auth.credentials import AnonymousCredentials

  output, _ = compiled
  args = vertex_runner.parser().parse_args(['--compile-only', *REQUIRED, '--no-cache'])
  config, vertex = vertex_runner.settings_from_args(args)
  assert not config.enable_cache
  for cache in (True, False):
    job = vertex_runner.pipeline_job(
      output,
      dataclasses.replace(config, enable_cache=cache),
      vertex,
      credentials=AnonymousCredentials(),
    )
    assert (job.project, job.location) == (PROJECT, REGION)
    assert job.runtime_config.gcs_output_directory == ROOT
    assert dict(job.runtime_config.parameter_values) == {}  # The pipeline takes no parameters.
    resource = job._gca_resource  # pylint: disable=protected-access
    assert resource.display_name == 'flower-tuner'
    tasks = resource.pipeline_spec['root']['dag']['tasks']
    assert set(tasks) == set(COMPONENTS) | RESOLVER_TASKS
    assert {t['cachingOptions']['enableCache'] for t in tasks.values()} == {cache}


def _run_failing(argv, monkeypatch, capsys):
  def must_not_compile(*args, **kwargs):
    raise AssertionError('compiled despite bad settings')

  monkeypatch.setattr(vertex_runner, 'compile_pipeline', must_not_compile)
  rc = vertex_runner.main(argv)
  err = capsys.readouterr().err.strip()
  return rc, err


def _without(flag):
  i = REQUIRED.index(flag)
  return REQUIRED[:i] + REQUIRED[i + 2 :]


@pytest.mark.parametrize(
  'argv,flag',
  [
    (_without('--project'), '--project'),
    (_without('--region'), '--region'),
    (_without('--pipeline-root'), '--pipeline-root'),
    (_without('--pipeline-root') + ['--pipeline-root', 'pipeline_output'], '--pipeline-root'),
    (_without('--data-root') + ['--data-root', '/data/flowers'], '--data-root'),
    (
      REQUIRED + ['--trainer-accelerator-type', 'TPU_V3', '--trainer-accelerator-count', '8'],
      '--trainer-',
    ),  # TPU_V3 needs machine type cloud-tpu.
    (REQUIRED + ['--output', '/proc/nope/flower-tuner.json'], '--output /proc/nope: '),
  ],
)
def test_missing_or_wrong_settings_fail_before_compiling(argv, flag, monkeypatch, capsys):
  rc, err = _run_failing(['--compile-only', *argv], monkeypatch, capsys)
  assert rc == 2
  assert len(err.splitlines()) == 1
  assert err.startswith(f'error: {flag}')


def test_config_file_supplies_settings_and_flags_win(tmp_path, monkeypatch):
  (tmp_path / 'vertex.yaml').write_text(
    'project: file-project\nregion: us-central1\npipeline-root: gs://b/root\n'
    'data_root: gs://b/flowers\nnum_parallel_trials: 5\ntrainer_machine_type: cloud-tpu\n'
    'trainer_accelerator_type: TPU_V3\ntrainer_accelerator_count: 8\n'
  )
  seen = {}
  monkeypatch.setattr(vertex_runner, '_quiet', lambda verbose: None)
  monkeypatch.setattr(
    vertex_runner,
    'compile_pipeline',
    lambda config, vertex, output, split: seen.update(config=config, vertex=vertex),
  )
  rc = vertex_runner.main(
    ['--compile-only', '--config', str(tmp_path / 'vertex.yaml'), '--region', 'europe-west4']
  )
  assert rc == 0
  vertex, config = seen['vertex'], seen['config']
  assert (vertex.project, vertex.region, vertex.num_parallel_trials) == (
    'file-project',
    'europe-west4',
    5,
  )
  assert vertex.trainer_machine.is_tpu and config.pipeline_root == 'gs://b/root'


def test_config_file_with_an_unknown_setting_is_refused(tmp_path, monkeypatch, capsys):
  (tmp_path / 'vertex.json').write_text(json.dumps({'project': 'p', 'zone': 'us-central1-a'}))
  rc, err = _run_failing(
    ['--compile-only', '--config', str(tmp_path / 'vertex.json')], monkeypatch, capsys
  )
  assert rc == 2 and len(err.splitlines()) == 1 and "'zone'" in err


def test_help_documents_every_flag():
  out = subprocess.run(
    [sys.executable, os.path.join(REPO, 'run_vertex.py'), '--help'],
    capture_output=True,
    text=True,
    check=True,
    cwd=REPO,
  ).stdout
  for flag in (
    '--compile-only',
    '--submit',
    '--config',
    '--project',
    '--region',
    '--pipeline-root',
    '--data-root',
    '--image',
    '--service-account',
    '--num-parallel-trials',
    '--tuner-machine-type',
    '--trainer-accelerator-type',
    '--trainer-tpu-topology',
    '--no-dataflow',
    '--beam-arg',
  ):
    assert flag in out


def test_tpu_topology_reaches_the_machine_spec():
  from tfx_pipeline.vertex.settings import MachineSpec

  v5e = MachineSpec('ct5lp-hightpu-4t', 'TPU_V5_LITEPOD', 4, '2x2')
  assert v5e.to_vertex() == {
    'machine_type': 'ct5lp-hightpu-4t',
    'accelerator_type': 'TPU_V5_LITEPOD',
    'accelerator_count': 4,
    'tpu_topology': '2x2',
  }
  with pytest.raises(ValueError):
    MachineSpec('n1-standard-8', 'NVIDIA_TESLA_T4', 1, '2x2')  # A topology is for TPUs only.
  with pytest.raises(ValueError):
    MachineSpec('n1-standard-8', None, 2)  # A count needs a type.


# Strategy selection ----------------------------------------------------------


@pytest.fixture
def no_accelerators(monkeypatch):
  from modules.runtime import strategy

  monkeypatch.delenv('KERASTUNER_TUNER_ID', raising=False)
  monkeypatch.setattr(strategy, 'tpu_resolver', lambda: None)
  monkeypatch.setattr(strategy, 'gpu_count', lambda: 0)
  return strategy


def test_a_tpu_gives_tpu_strategy(no_accelerators, monkeypatch):
  import tensorflow as tf

  strategy = no_accelerators
  resolver, calls = object(), []
  monkeypatch.setattr(strategy, 'tpu_resolver', lambda: resolver)
  monkeypatch.setattr(
    tf.config, 'experimental_connect_to_cluster', lambda r: calls.append(('connect', r))
  )
  monkeypatch.setattr(
    tf.tpu.experimental, 'initialize_tpu_system', lambda r: calls.append(('initialize', r))
  )

  class FakeTPUStrategy:
    def __init__(self, r):
      self.resolver = r

  monkeypatch.setattr(tf.distribute, 'TPUStrategy', FakeTPUStrategy)
  chosen = strategy.choose()
  assert isinstance(chosen, FakeTPUStrategy) and chosen.resolver is resolver
  assert calls == [('connect', resolver), ('initialize', resolver)]


def test_tpu_is_found_from_its_device_files(monkeypatch):
  import tensorflow as tf

  from modules.runtime import strategy

  monkeypatch.delenv('TPU_NAME', raising=False)
  monkeypatch.setattr(strategy.glob, 'glob', lambda pattern: [])
  assert strategy.tpu_resolver() is None
  monkeypatch.setattr(
    strategy.glob, 'glob', lambda pattern: ['/dev/accel0'] if pattern == '/dev/accel*' else []
  )
  assert isinstance(strategy.tpu_resolver(), tf.distribute.cluster_resolver.TPUClusterResolver)


def test_gpus_give_mirrored_strategy(no_accelerators, monkeypatch):
  import tensorflow as tf

  strategy = no_accelerators
  monkeypatch.setattr(strategy, 'gpu_count', lambda: 2)
  assert isinstance(strategy.choose(), tf.distribute.MirroredStrategy)


def test_cpu_only_gives_the_default_strategy(no_accelerators):
  import tensorflow as tf

  chosen = no_accelerators.choose()
  assert chosen is tf.distribute.get_strategy()
  assert not isinstance(chosen, (tf.distribute.MirroredStrategy, tf.distribute.TPUStrategy))


def test_the_oracle_chief_leaves_accelerators_to_its_worker(no_accelerators, monkeypatch):
  import tensorflow as tf

  strategy = no_accelerators
  monkeypatch.setenv('KERASTUNER_TUNER_ID', 'chief')
  monkeypatch.setattr(strategy, 'tpu_resolver', lambda: pytest.fail('chief looked for a TPU'))
  monkeypatch.setattr(strategy, 'gpu_count', lambda: 2)
  hidden = []
  monkeypatch.setattr(tf.config, 'set_visible_devices', lambda d, kind: hidden.append((d, kind)))
  assert strategy.choose() is tf.distribute.get_strategy()
  assert hidden == [([], 'GPU')]


def test_tuner_fn_searches_under_the_chosen_strategy(no_accelerators, monkeypatch, fn_args_for):
  import tensorflow as tf

  from modules import tuner as tuner_module

  monkeypatch.setattr(no_accelerators, 'gpu_count', lambda: 1)
  result = tuner_module.tuner_fn(fn_args_for({'tuner': 'random', 'max_trials': 1}))
  assert isinstance(result.tuner.distribution_strategy, tf.distribute.MirroredStrategy)


def test_run_fn_builds_the_model_in_the_strategy_scope(monkeypatch, fn_args_for):
  import tensorflow as tf

  from modules import trainer
  from modules.model import model
  from modules.runtime import strategy

  mirrored = tf.distribute.MirroredStrategy()
  monkeypatch.setattr(strategy, 'choose', lambda: mirrored)
  built_under = []
  # The default backbone is frozen: the Trainer builds the head on its cached features.
  build_head = model.build_head

  def spy(*args, **kwargs):
    built_under.append(tf.distribute.get_strategy())
    return build_head(*args, **kwargs)

  monkeypatch.setattr(model, 'build_head', spy)
  fn_args = fn_args_for({'epochs': 1}, train_steps=1)
  trainer.run_fn(fn_args)
  assert built_under == [mirrored]
  assert 'serving_jpeg' in tf.saved_model.load(fn_args.serving_model_dir).signatures


# Cloud Storage paths on Vertex ----------------------------------------------


def test_gs_paths_map_onto_the_vertex_mount(monkeypatch, tmp_path):
  from modules.runtime import gcs

  assert gcs.local_path('gs://bucket/run') == 'gs://bucket/run'  # No mount here.
  monkeypatch.setattr(gcs, 'GCS_MOUNT', str(tmp_path))
  assert gcs.local_path('gs://bucket/run/x') == str(tmp_path / 'bucket' / 'run' / 'x')
  assert gcs.local_path('/local/run') == '/local/run'


def test_a_parallel_search_keeps_trials_where_every_machine_sees_them(monkeypatch, tmp_path):
  from modules import tuner as tuner_module
  from modules.module_config import RunPaths
  from modules.runtime import gcs

  monkeypatch.setattr(gcs, 'GCS_MOUNT', str(tmp_path))
  monkeypatch.setenv('CLOUD_ML_JOB_ID', '1234')
  local = types.SimpleNamespace(custom_config={}, working_dir='/tmp/work')
  assert tuner_module.search_directory(local) == '/tmp/work'
  shared = types.SimpleNamespace(
    custom_config=RunPaths(shared_trials_dir='gs://bucket/root/tuner_trials').to_custom_config(),
    working_dir='/tmp',
  )
  assert tuner_module.search_directory(shared) == str(
    tmp_path / 'bucket' / 'root' / 'tuner_trials' / '1234'
  )


def test_a_hypermodel_and_its_search_space_ship_with_the_pipeline(tmp_path, monkeypatch):
  """The space's contents travel in custom_config; the builder (in the image) keys by its code."""
  space = tmp_path / 'space.yaml'
  space.write_text(
    'units: {type: int, min: 64, max: 128, step: 64, default: 64}\n'
    'batch_size: {type: choice, values: [16, 32], default: 32}\n'
  )
  output = tmp_path / 'pipeline.json'
  monkeypatch.setattr(vertex_runner, '_quiet', lambda verbose: None)
  argv = ['--compile-only', *REQUIRED, '--output', str(output), '--tuner', 'random']
  builder = os.path.join(REPO, 'examples', 'flower_builder.py')
  argv += ['--hypermodel', f'{builder}:model_builder', '--search-space', str(space)]
  assert vertex_runner.main(argv) == 0
  with open(output) as f:
    spec = json.load(f)
  for task in ('Tuner', 'Trainer'):
    config = _custom_config(spec, task)
    # Where the image has it: the checkout's layout under /pipeline.
    assert config['hypermodel'] == 'examples/flower_builder.py:model_builder'
    assert [e['name'] for e in config['search_space_spec']] == ['units', 'batch_size']
    assert len(config['hypermodel_code']) == 16


def test_a_hypermodel_the_image_does_not_hold_is_refused(tmp_path, monkeypatch, capsys):
  from modules.module_config import ModuleConfig
  from tfx_pipeline.config import PipelineConfig
  from tfx_pipeline.options import UsageError

  outside = tmp_path / 'my_builder.py'
  outside.write_text('def model_builder(hp):\n  return None\n')
  monkeypatch.setattr(vertex_runner, '_quiet', lambda verbose: None)
  argv = ['--compile-only', *REQUIRED, '--hypermodel', f'{outside}:model_builder']
  argv += ['--output', str(tmp_path / 'p.json')]
  assert vertex_runner.main(argv) == 2
  (line,) = capsys.readouterr().err.strip().splitlines()
  assert line.startswith(f'error: --hypermodel {outside}:model_builder: ') and 'outside' in line

  dockerfile = tmp_path / 'Dockerfile'
  dockerfile.write_text('FROM x\nCOPY modules/ modules/\nCOPY tfx_pipeline/ tfx_pipeline/\n')
  config = PipelineConfig(module=ModuleConfig(hypermodel='examples.flower_builder:model_builder'))
  with pytest.raises(UsageError, match=r'does not copy examples/ into the image'):
    vertex_runner.check_search(config, dockerfile=str(dockerfile))
  from tfx_pipeline.vertex.image import copied_folders

  assert copied_folders(os.path.join(REPO, 'Dockerfile')) == [
    'modules',
    'tfx_pipeline',
    'examples',
  ]


def test_the_oracle_process_computes_no_backbone_features(monkeypatch, fn_args_for, tmp_path):
  """The chief's oracle process runs tuner_fn too: it must serve at once, with no backbone pass."""
  from modules import tuner as tuner_module
  from modules.module_config import RunPaths

  cache = tmp_path / 'features'
  monkeypatch.setenv('KERASTUNER_TUNER_ID', 'chief')
  fn_args = fn_args_for(
    {'tuner': 'random', 'max_trials': 1}, paths=RunPaths(feature_cache_dir=str(cache))
  )
  data = tuner_module.tuner_fn(fn_args).tuner.hypermodel.data
  assert data.cached_features and data.feature_dim == 1280
  assert not cache.exists() or not os.listdir(cache)
  with pytest.raises(RuntimeError, match='fits no model'):
    data.train(8, None)
  monkeypatch.delenv('KERASTUNER_TUNER_ID')
  assert tuner_module.tuner_fn(fn_args).tuner.hypermodel.data.feature_dim == 1280
  assert os.listdir(cache)  # A worker (or a search without a chief) computes them.
