"""run_vertex.py --rehearse, from the CLI: the compiled pipeline run here as Vertex runs it.

One rehearsal with two parallel tuning machines serves the first tests; a
second one on the same root gets its blessed model as the baseline; broken
checkouts (copies of this one) fail in the task that meets the fault. Tiny
sizes throughout: 32 px images, one epoch, four trials.
"""

import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys

import pytest

from tests import runs
from tests.conftest import COMPONENTS, REPO
from tfx_pipeline import warm_start

VERTEX = ['--project', 'p', '--region', 'us-central1', '--pipeline-root', 'gs://b/root']
TINY = [
  *('--image-size', '32', '--tuner', 'random', '--max-trials', '4'),
  *('--epochs', '1', '--max-epochs', '1', '--batch-size', '8', '--accuracy-threshold', '0'),
]
CONTAINER_TASKS = COMPONENTS  # The local run's components are the compiled pipeline's containers.
# Every task the rehearsal counts: the containers and the two queries of the baseline's resolver.
TASKS = len(CONTAINER_TASKS) + 2


def _rehearse(checkout, root, data, *flags):
  """`python run_vertex.py --rehearse ...` in `checkout`: (exit code, stdout, stderr lines)."""
  argv = [os.path.join(checkout, 'run_vertex.py'), '--rehearse', *VERTEX]
  argv += ['--data-root', data, '--rehearsal-root', str(root), *TINY, *flags]
  argv += ['--output', os.path.join(str(root), 'pipeline.json')]
  # Started warm, and its tasks too, from this test process's server (tests/runs.py).
  rc, out, err = runs.run(argv, timeout=1500, cwd=checkout)
  return rc, out.splitlines(), err.strip().splitlines()


def _value(lines, prefix):
  (line,) = [x for x in lines if x.startswith(prefix)]
  return line[len(prefix) :].strip()


def _record(root):
  with open(os.path.join(str(root), 'metadata', 'artifacts.jsonl')) as f:
    return [json.loads(line) for line in f]


@pytest.fixture(scope='module')
def first(tmp_path_factory, tiny_data):
  root = tmp_path_factory.mktemp('rehearsal')
  rc, out, err = _rehearse(REPO, root, tiny_data, '--num-parallel-trials', '2')
  assert rc == 0, '\n'.join(out + err)
  return root, out


@pytest.mark.pipeline
def test_a_rehearsal_runs_every_task_and_pushes_a_model_predict_uses(first, tiny_data, tmp_path):
  root, out = first
  for task in CONTAINER_TASKS:
    assert any(re.fullmatch(rf'\[\d+/{TASKS}\] {task} done in [\d.]+s', line) for line in out), task
  assert _value(out, 'baseline:') == 'none (no blessed model yet)'
  # The summary a local run prints: the best trial's score, the fitted temperature, the int8 check.
  assert re.fullmatch(r'\d\.\d{3} \(the split .*', _value(out, "  best trial's eval accuracy:"))
  assert re.match(
    r'temperature \d+\.\d\d \(fitted on eval\); test ECE ', _value(out, 'calibration:')
  )
  assert re.match(r'\d\.\d{3} \([+-]\d\.\d{3}\), [\d.]+ MB', _value(out, 'tflite int8:'))
  pushed = _value(out, 'pushed model:')
  assert pushed.startswith(os.path.join(str(root), 'gcs', 'b', 'root', 'serving_model'))
  from tfx_pipeline.local import predict

  ((_, encoded, _),) = predict.iter_photos(sorted(glob.glob(f'{tiny_data}/*train*'))[:1], 1)
  photo = tmp_path / 'photo.jpg'
  photo.write_bytes(encoded)
  done = runs.run_local('predict', '--model-dir', pushed, str(photo))
  assert done.rc == 0, done.err
  assert re.search(r'(daisy|dandelion|roses|sunflowers|tulips) +\d+\.\d%', done.out)


@pytest.mark.pipeline
def test_the_tuning_job_runs_a_chief_and_a_worker_process_each_running_trials(first):
  root, out = first
  pids = re.findall(r'tfx_tuner_\S+ (workerpool\d-0) started as process (\d+)', '\n'.join(out))
  assert [r for r, _ in pids] == ['workerpool0-0', 'workerpool1-0']
  assert pids[0][1] != pids[1][1]
  trials = re.findall(r'^  (workerpool\d-0): trial \d+/4: ', '\n'.join(out), re.M)
  assert sorted(set(trials)) == ['workerpool0-0', 'workerpool1-0'] and len(trials) == 4
  with open(_value(out, 'log:')) as f:
    log = f.read()
  # TFX's chief serves the oracle from a process of its own; the worker finds it
  # at workerpool0's address in CLUSTER_SPEC, on loopback.
  (chief,) = set(re.findall(r"'workerpool0': \['(127\.0\.0\.1:\d+)'\]", log))
  assert '[workerpool0-0] ' in log and 'Binding chief oracle server at: 0.0.0.0:' in log
  assert '[workerpool1-0] ' in log
  assert re.search(rf'\[workerpool1-0\] .*Oracle chief is known to be at: {chief}', log)
  # The chief's two processes: only the one that runs trials reads the BackboneFeatures
  # step's records (and no process computes features of its own).
  (tuner,) = set(re.findall(rf'^\[\d+/{TASKS}\] Tuner(?= \.\.\.$)', log, re.M))
  tuning = log[log.index(f'{tuner} ...') : log.index(f'{tuner} done')]
  step = r'features: .* from the BackboneFeatures step \('
  assert len(re.findall(rf'^\[workerpool0-0\] {step}', tuning, re.M)) == 1
  assert 'feature cache:' not in tuning


@pytest.mark.pipeline
def test_a_second_rehearsal_has_the_first_blessed_model_as_baseline(first, tiny_data):
  root, first_out = first
  first_model = [a for a in _record(root) if a['task'] == 'Trainer'][0]['uri']
  rc, out, err = _rehearse(REPO, root, tiny_data, '--num-parallel-trials', '2')
  assert rc == 0, '\n'.join(out + err)
  assert _value(out, 'baseline:') == first_model
  # Vertex's cache: nothing upstream of the baseline changed.
  for task in ('ImportExampleGen', 'Transform', 'Tuner', 'Trainer'):
    assert any(re.fullmatch(rf'\[\d+/{TASKS}\] {task} cached', line) for line in out), task
  from tfx_pipeline.local import evaluation

  evaluations = [a for a in _record(root) if a['task'] == 'Evaluator']
  evaluated = [a['uri'] for a in evaluations if a['uri'].endswith('evaluation')][-1]
  assert evaluation.read(evaluated).baseline_accuracy is not None


def _running(pid):
  """Whether process `pid` still runs (a zombie that nobody has reaped yet does not)."""
  try:
    with open(f'/proc/{pid}/stat') as f:
      return f.read().rsplit(')', 1)[1].split()[0] != 'Z'
  except FileNotFoundError:
    return False


@pytest.mark.pipeline
def test_ctrl_c_stops_every_process_the_rehearsal_started(first, tiny_data):
  root, _ = first
  argv = [sys.executable, 'run_vertex.py', '--rehearse', *VERTEX, '--data-root', tiny_data]
  argv += ['--rehearsal-root', str(root), *TINY, '--num-parallel-trials', '2', '--max-trials', '5']
  # As from a terminal: a suite started in the background inherits an ignored SIGINT.
  as_from_a_terminal = lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)  # noqa: E731
  pipes = {'stdout': subprocess.PIPE, 'stderr': subprocess.PIPE, 'text': True}
  # As a person starts it: cold, with a warm-start server of its own to stop too.
  env = {k: v for k, v in os.environ.items() if k != warm_start.ADDRESS_ENV}
  rehearsal = subprocess.Popen(argv, cwd=REPO, env=env, preexec_fn=as_from_a_terminal, **pipes)
  replicas = []
  for line in rehearsal.stdout:  # The upstream tasks come from the cache; the Tuner reruns.
    replicas += [
      int(p) for p in re.findall(r'tfx_tuner_\S+ workerpool\d-0 started as process (\d+)', line)
    ]
    if len(replicas) == 2:
      break
  assert len(replicas) == 2 and all(_running(p) for p in replicas)
  servers = _children(rehearsal.pid, 'tfx_pipeline.warm_server')
  assert len(servers) == 1
  rehearsal.send_signal(signal.SIGINT)
  out, _ = rehearsal.communicate(timeout=120)
  assert rehearsal.returncode == 130
  assert 'interrupted: every process of the rehearsal is stopped' in out
  assert not any(_running(p) for p in replicas)
  assert not any(_running(p) for p in servers)  # Its warm-start server too.


def _children(pid, command):
  """The running processes whose parent is `pid` and whose command line holds `command`."""
  found = []
  for entry in filter(str.isdigit, os.listdir('/proc')):
    try:
      with open(f'/proc/{entry}/stat') as f:
        parent = f.read().rsplit(')', 1)[1].split()[1]
      with open(f'/proc/{entry}/cmdline', 'rb') as f:
        line = f.read().replace(b'\0', b' ').decode(errors='replace')
    except (FileNotFoundError, ProcessLookupError):
      continue
    if parent == str(pid) and command in line and _running(int(entry)):
      found.append(int(entry))
  return found


def _checkout_copy(tmp_path):
  """A copy of this checkout's code: what a user who edits it would rehearse."""
  copy = tmp_path / 'checkout'
  for name in ('modules', 'tfx_pipeline', 'examples'):
    shutil.copytree(
      os.path.join(REPO, name), copy / name, ignore=shutil.ignore_patterns('__pycache__')
    )
  for name in ('Dockerfile', 'run_vertex.py', 'run_local.py'):
    shutil.copy(os.path.join(REPO, name), copy / name)
  return copy


@pytest.mark.pipeline
def test_a_user_module_that_raises_on_import_fails_its_task_in_one_line(first, tiny_data, tmp_path):
  root, _ = first
  copy = _checkout_copy(tmp_path)
  with open(copy / 'modules' / 'preprocessing.py', 'a') as f:
    f.write("\nraise RuntimeError('preprocessing is broken')\n")
  rc, out, err = _rehearse(str(copy), root, tiny_data)
  assert rc == 1, '\n'.join(out + err)
  assert err[0] == 'error: task Transform failed: RuntimeError: preprocessing is broken'
  assert err[1].startswith('log: ') and len(err) == 2


@pytest.mark.pipeline
def test_a_hypermodel_module_the_image_does_not_hold_fails_the_tuner(first, tiny_data, tmp_path):
  """Its file is in a copied folder, but it imports a package ./Dockerfile does not copy."""
  root, _ = first
  copy = _checkout_copy(tmp_path)
  (copy / 'helpers').mkdir()
  (copy / 'helpers' / '__init__.py').write_text('UNITS = (64, 128)\n')
  builder = (copy / 'examples' / 'flower_builder.py').read_text()
  (copy / 'examples' / 'helper_builder.py').write_text('import helpers  # noqa: F401\n' + builder)
  rc, out, err = _rehearse(
    str(copy), root, tiny_data, '--hypermodel', 'examples/helper_builder.py:model_builder'
  )
  assert rc == 1, '\n'.join(out + err)
  assert err[0].startswith('error: task Tuner failed: its custom job failed: workerpool')
  assert ': HypermodelError: --hypermodel examples/helper_builder.py:model_builder: ' in err[0]
  assert "(ModuleNotFoundError: No module named 'helpers')" in err[0]
  assert err[1].startswith('log: ') and len(err) == 2


# The stand-ins, against TFX's own code ---------------------------------------


@pytest.mark.parametrize('pools', [1, 2, 3])
def test_cluster_spec_gives_each_replica_the_role_tfx_tuner_expects(monkeypatch, pools):
  """TFX's cloud Tuner reads CLUSTER_SPEC as Vertex sets it: pool 0 is the chief, for all."""
  from tfx.extensions.google_cloud_ai_platform.tuner import executor

  from tfx_pipeline.vertex.rehearsal import jobs

  specs = [{'replica_count': 1}] + [{'replica_count': 2}] * (pools - 1)
  addresses = [
    [f'127.0.0.1:{5000 + 10 * i + j}' for j in range(p['replica_count'])]
    for i, p in enumerate(specs)
  ]
  seen = []
  for i, spec in enumerate(specs):
    for j in range(spec['replica_count']):
      env = jobs.cluster_env(specs, addresses, i, j)
      monkeypatch.setenv('CLUSTER_SPEC', env['CLUSTER_SPEC'])
      worker = executor._WorkerExecutor(executor._WorkerExecutor.Context(tmp_dir='/tmp'))
      assert (worker._master_addr, worker._master_port) == ('127.0.0.1', '5000')
      assert worker._is_chief == (i == 0)
      seen.append(worker._tuner_id)
      if sum(map(len, addresses)) > 1:  # Vertex's TF_CONFIG names pools as TF roles.
        task = json.loads(env['TF_CONFIG'])['task']
        assert task == {'type': ('chief', 'worker', 'ps')[i], 'index': j}
  assert len(set(seen)) == len(seen)  # Every replica its own keras-tuner id.


def test_the_job_service_refuses_a_machine_vertex_would_refuse():
  from google.api_core import exceptions

  from tfx_pipeline.vertex.rehearsal import jobs

  job = {
    'display_name': 'tfx_tuner_x',
    'job_spec': {
      'worker_pool_specs': [
        {
          'replica_count': 1,
          'machine_spec': {
            'machine_type': 'n1-standard-8',
            'accelerator_type': 'NVIDIA_L4',
            'accelerator_count': 1,
          },
          'container_spec': {'command': ['python', '-c', 'pass']},
        }
      ]
    },
  }
  with pytest.raises(
    exceptions.InvalidArgument, match=r'worker pool 0: NVIDIA_L4 runs on machine type g2-standard-4'
  ):
    jobs.LocalJobService('us-central1').create_custom_job('projects/p/locations/us-central1', job)


@pytest.mark.parametrize(
  'flags,message',
  [
    (
      ['--tuner-accelerator-type', 'NVIDIA_TESLA_T4', '--tuner-accelerator-count', '3'],
      'NVIDIA_TESLA_T4: Vertex attaches 1, 2 or 4 per machine, not 3.',
    ),
    (
      [
        '--trainer-machine-type',
        'cloud-tpu',
        '--trainer-accelerator-type',
        'TPU_V3',
        '--trainer-accelerator-count',
        '4',
      ],
      'cloud-tpu has 8 x TPU_V3: ask for 8, not 4.',
    ),
    (
      ['--trainer-machine-type', 'a2-highgpu-1g'],
      'machine type a2-highgpu-1g comes with 1 x NVIDIA_TESLA_A100',
    ),
    (
      ['--trainer-accelerator-type', 'NVIDIA_TESLA_K40', '--trainer-accelerator-count', '1'],
      'accelerator type NVIDIA_TESLA_K40 is not one Vertex AI training offers',
    ),
  ],
)
def test_compile_refuses_machines_vertex_would_refuse_in_one_line(flags, message, capsys):
  from tfx_pipeline.vertex import runner

  argv = ['--compile-only', *VERTEX, '--data-root', 'gs://b/data', *flags]
  assert runner.main(argv) == 2
  (line,) = capsys.readouterr().err.strip().splitlines()
  assert line.startswith('error: --t') and message in line


def test_a_rehearsal_without_data_says_where_to_put_it_in_one_line(tmp_path):
  rc, out, err = _rehearse(REPO, tmp_path, 'gs://b/flowers')
  assert rc == 2
  gcs = os.path.join(str(tmp_path), 'gcs', 'b', 'flowers')
  (line,) = err
  assert line.startswith(f'error: --data-root gs://b/flowers is {gcs} in a rehearsal, which ')
  assert line.endswith('or pass a local folder as --data-root.')


@pytest.mark.parametrize(
  'split, fix',
  [
    # A folder of other TFRecords (the real shard's only file is a test shard) is split by hash.
    ('train', 'pass --split-by-hash to split its TFRecord files 80/10/10 into train/eval/test.'),
    # The compiled pipeline reads test shards unless --no-test-split says there are none.
    ('test', 'add them, or pass --no-test-split to evaluate on the validation split.'),
  ],
)
def test_a_rehearsal_on_data_without_a_splits_shards_names_the_flag_in_one_line(
  tiny_data, tmp_path, split, fix
):
  data = tmp_path / f'no_{split}'
  shutil.copytree(tiny_data, data, ignore=shutil.ignore_patterns(f'*-{split}.tfrecord-*'))
  rc, out, err = _rehearse(REPO, tmp_path, str(data))
  assert rc == 2
  (line,) = err
  assert line == (
    f'error: --data-root {data} has no {split} shards '
    f'(image_classification_builder-{split}.tfrecord-*): {fix}'
  )
