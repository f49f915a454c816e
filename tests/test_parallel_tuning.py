"""Parallel trials on one machine: a keras-tuner chief on loopback plus worker processes."""

import json
import os
import shutil
import signal
import socket
import threading
import time

import keras_tuner
import pytest
from tfx.dsl.components.base import base_executor
from tfx.proto import tuner_pb2
from tfx.types import standard_artifacts
from tfx.utils import proto_utils

from modules.module_config import RunPaths
from modules.tuning import state as tuning_state
from tfx_pipeline.local import report as tuning_report
from tfx_pipeline.parallel import chief, component, pool

TRIALS = 3


@pytest.fixture(autouse=True)
def warm_workers():
  """Worker processes fork from this test process's warm-start server (tests/runs.py)."""
  from tests import runs

  runs.warm_address()


def _executor_args(transformed, tmp_path, workers, **extra_config):
  """input_dict, output_dict and exec_properties as TFX hands them to the Tuner executor."""
  transform_dir, files, config = transformed
  examples = standard_artifacts.Examples()
  examples.uri = str(tmp_path / 'examples')
  examples.split_names = '["train", "eval"]'
  for split in ('train', 'eval'):
    os.makedirs(os.path.join(examples.uri, f'Split-{split}'))
    shutil.copy(files[split][0], os.path.join(examples.uri, f'Split-{split}', 'data.tfrecord'))
  graph = standard_artifacts.TransformGraph()
  graph.uri = transform_dir
  outputs = {
    'best_hyperparameters': standard_artifacts.HyperParameters(),
    'tuner_results': standard_artifacts.TunerResults(),
  }
  for key, artifact in outputs.items():
    artifact.uri = str(tmp_path / key)
    os.makedirs(artifact.uri)
  custom_config = {
    **config.to_custom_config(),
    'tuner': 'random',
    'max_trials': TRIALS,
    'max_epochs': 1,
    'fit_log': str(tmp_path / 'fits.log'),
    **extra_config,
    **RunPaths(tuning_dir=str(tmp_path / 'tuning')).to_custom_config(),
  }
  exec_properties = {
    'tuner_fn': 'tests.parallel_tuner_fn.tuner_fn',
    'custom_config': json.dumps(custom_config),
    'train_args': '{}',
    'eval_args': '{}',
    'tune_args': proto_utils.proto_to_json(tuner_pb2.TuneArgs(num_parallel_trials=workers)),
  }
  return (
    {'examples': [examples], 'transform_graph': [graph]},
    {k: [v] for k, v in outputs.items()},
    exec_properties,
  )


def _executor(tmp_path):
  return component.Executor(
    base_executor.BaseExecutor.Context(tmp_dir=str(tmp_path / 'tmp'), unique_id='1')
  )


def _project(tmp_path):
  return os.path.join(
    tuning_state.latest_search(str(tmp_path / 'tuning')), tuning_state.PROJECT_NAME
  )


def _trials(project):
  out = {}
  for name in os.listdir(project):
    path = os.path.join(project, name, 'trial.json')
    if name.startswith('trial_') and os.path.exists(path):
      with open(path) as f:
        out[name] = json.load(f)
  return out


def _fits(tmp_path):
  with open(tmp_path / 'fits.log') as f:
    return [line.split() for line in f]


def _assert_nothing_left(output, fits):
  (port,) = [
    line.split(':')[-1].split(',')[0]
    for line in output.splitlines()
    if line.startswith('parallel search: chief on')
  ]
  with pytest.raises(ConnectionRefusedError):
    socket.create_connection(('127.0.0.1', int(port)), timeout=5)
  for _, pid in fits:
    with pytest.raises(ProcessLookupError):  # Exited and reaped by the executor.
      os.kill(int(pid), 0)


def _best_is_best_trial(tmp_path, trials):
  with open(tmp_path / 'best_hyperparameters' / 'best_hyperparameters.txt') as f:
    best = keras_tuner.HyperParameters.from_config(json.load(f))
  completed = [t for t in trials.values() if t['status'] == 'COMPLETED']
  (chosen,) = [t for t in completed if t['hyperparameters']['values'] == best.values]
  assert chosen['score'] == max(t['score'] for t in completed)


def test_two_workers_run_every_trial_once(transformed, tmp_path, capsys):
  inputs, outputs, props = _executor_args(transformed, tmp_path, workers=2)
  _executor(tmp_path).Do(inputs, outputs, props)
  output = capsys.readouterr().out

  trials = _trials(_project(tmp_path))
  assert sorted(trials) == [f'trial_{i}' for i in range(TRIALS)]
  assert all(t['status'] == 'COMPLETED' for t in trials.values()), trials
  for name in trials:  # Each trial's own record of its run, written by its worker.
    assert os.path.exists(os.path.join(_project(tmp_path), name, 'run.json'))
  fits = _fits(tmp_path)
  assert len(fits) == TRIALS  # One fit per trial: no trial ran twice.
  assert {tuner_id for tuner_id, _ in fits} <= {'tuner0', 'tuner1'}  # Workers, not the chief.
  assert f'{TRIALS} trials ({TRIALS} COMPLETED) by 2 workers; no trial lost' in output
  _best_is_best_trial(tmp_path, trials)
  _assert_nothing_left(output, fits)


def test_a_stop_request_ends_the_search_and_its_workers(transformed, tmp_path, capsys):
  """A Ctrl-C of the run (modules/runtime/stop.py): the chief stops, its workers with it, at once;
  the next run resumes the search."""
  from modules.runtime import stop

  inputs, outputs, props = _executor_args(transformed, tmp_path, workers=2)

  def stop_once_a_trial_trains():
    while not os.path.exists(tmp_path / 'fits.log'):
      time.sleep(0.1)
    stop.request()

  threading.Thread(target=stop_once_a_trial_trains, daemon=True).start()
  try:
    with pytest.raises(KeyboardInterrupt):
      _executor(tmp_path).Do(inputs, outputs, props)
  finally:
    stop.withdraw()
  stopped = time.monotonic()
  _assert_nothing_left(capsys.readouterr().out, _fits(tmp_path))
  assert time.monotonic() - stopped < 1  # The workers were already gone.
  trials = _trials(_project(tmp_path))
  assert any(t['status'] == 'RUNNING' for t in trials.values())
  assert not os.listdir(tmp_path / 'best_hyperparameters')

  # The next run resumes: it reruns what was running, and says so trial by trial.
  finished = sum(t['status'] == 'COMPLETED' for t in trials.values())
  _executor(tmp_path).Do(inputs, outputs, props)
  lines = capsys.readouterr().out.splitlines()
  assert all(t['status'] == 'COMPLETED' for t in _trials(_project(tmp_path)).values())
  numbers = [line.split(':')[0] for line in lines if line.startswith('trial ')]
  assert numbers == [f'trial {n}/{TRIALS}' for n in range(finished + 1, TRIALS + 1)]


def _kill_the_hung_worker(tmp_path, inputs, outputs, props, errors) -> int:
  """Runs the search in a thread, SIGKILLs the worker whose trial hangs, waits for the end.

  Returns the killed worker's pid; the search's exceptions go to `errors`.
  """

  def run():
    try:
      _executor(tmp_path).Do(inputs, outputs, props)
    except Exception as e:  # Reported by the caller.
      errors.append(e)

  search = threading.Thread(target=run)
  search.start()
  marker = str(tmp_path / 'fits.log.hung')
  deadline = time.monotonic() + 600  # A guard against a hung test, not a timing check.
  try:
    while not (os.path.exists(marker) and open(marker).read()):
      assert search.is_alive() and time.monotonic() < deadline, errors or 'no trial hung'
      time.sleep(0.2)
    hung_pid = int(open(marker).read())
    os.kill(hung_pid, signal.SIGKILL)
    search.join(timeout=600)
    assert not search.is_alive(), 'the search did not end after its worker was killed'
  finally:
    if search.is_alive():  # Leave no worker behind, whatever failed.
      for _, pid in _fits(tmp_path):
        try:
          os.kill(int(pid), signal.SIGKILL)
        except ProcessLookupError:
          pass
      search.join(timeout=60)
  return hung_pid


@pytest.mark.parametrize('retries,outcome', [(1, 'rerun'), (0, 'failed')])
def test_a_killed_worker_does_not_hang_the_search(
  transformed, tmp_path, capsys, monkeypatch, retries, outcome
):
  monkeypatch.setattr(chief, 'MAX_TRIAL_RETRIES', retries)
  inputs, outputs, props = _executor_args(transformed, tmp_path, workers=2, hang_once=True)
  errors = []
  hung_pid = _kill_the_hung_worker(tmp_path, inputs, outputs, props, errors)
  assert not errors, errors
  output = capsys.readouterr().out

  project = _project(tmp_path)
  trials = _trials(project)
  assert sorted(trials) == [f'trial_{i}' for i in range(TRIALS)]
  with open(os.path.join(project, pool.LOST_TRIALS_FILE)) as f:
    (lost,) = json.load(f)
  assert lost['exit'] == 'killed by SIGKILL' and lost['outcome'] == outcome
  hung_worker = [t for t, pid in _fits(tmp_path) if int(pid) == hung_pid][0]
  assert lost['worker'] == hung_worker
  line = f'trial {lost["trial"]} (worker {hung_worker} killed by SIGKILL): {outcome}'
  assert f'tuning: lost {line}' in output and f'lost with a worker: {line}' in output
  statuses = {name: t['status'] for name, t in trials.items()}
  lost_name = f'trial_{lost["trial"]}'
  assert statuses.pop(lost_name) == ('COMPLETED' if outcome == 'rerun' else 'FAILED')
  assert set(statuses.values()) == {'COMPLETED'}
  # The killed attempt plus one fit per trial that ran to its end.
  assert len(_fits(tmp_path)) == TRIALS + (1 if outcome == 'rerun' else 0)
  _best_is_best_trial(tmp_path, trials)
  _assert_nothing_left(output, _fits(tmp_path))
  report_lines = []
  tuning_report.print_report(tuning_report.write(os.path.dirname(project)), report_lines.append)
  assert f'  lost with a worker: {line}' in report_lines


def test_one_worker_is_the_stock_executor(transformed, tmp_path, monkeypatch):
  calls = []
  monkeypatch.setattr(chief, 'parallel_search', lambda *a, **k: calls.append(a))
  inputs, outputs, props = _executor_args(transformed, tmp_path, workers=1, max_trials=1)
  _executor(tmp_path).Do(inputs, outputs, props)
  assert not calls
  assert {t for t, _ in _fits(tmp_path)} == {'-'}  # Ran here, not in a worker.
  _best_is_best_trial(tmp_path, _trials(_project(tmp_path)))


def test_what_becomes_of_a_worker_that_exits():
  from tfx_pipeline.parallel.supervisor import GIVE_UP, IGNORE, RESTART, Supervisor, WorkerExit

  supervisor = Supervisor(workers=2, max_trials=3, max_retries=1)
  assert supervisor.on_exit(WorkerExit('tuner0', 0)).action == IGNORE  # Told to stop: done.
  # Killed mid-trial: replaced under the same id, which reruns the trial once, then fails it.
  first = supervisor.on_exit(WorkerExit('tuner1', -signal.SIGKILL, trial_id='02'))
  assert (first.action, first.end_trial) == (RESTART, None)
  assert first.lost == {
    'trial': '02',
    'worker': 'tuner1',
    'exit': 'killed by SIGKILL',
    'outcome': 'rerun',
  }
  second = supervisor.on_exit(
    WorkerExit('tuner1', -signal.SIGKILL, trial_id='02', log_tail='out of memory')
  )
  assert second.action == RESTART and second.lost['outcome'] == 'failed'
  assert second.end_trial == (
    'worker tuner1 killed by SIGKILL during this trial 2 times\nout of memory'
  )
  # Idle between trials: replaced while trials remain, forgotten once none is left.
  assert supervisor.on_exit(WorkerExit('tuner0', 1)).action == RESTART
  idle = supervisor.on_exit(WorkerExit('tuner0', 1, stopping=True))
  assert (idle.action, idle.end_trial, idle.lost) == (IGNORE, '', None)
  # A trial that fails once none is left: ended, and its worker not replaced.
  last = Supervisor(2, 3, max_retries=0).on_exit(
    WorkerExit('tuner1', -signal.SIGKILL, trial_id='03', stopping=True)
  )
  assert last.action == IGNORE and last.lost['outcome'] == 'failed' and last.end_trial
  # Dead before asking for any trial: the worker cannot run, so the search fails.
  broken = supervisor.on_exit(WorkerExit('tuner0', 1, asked=False, log_tail='ImportError: x'))
  assert broken.action == GIVE_UP
  assert broken.reason == (
    'tuner worker tuner0 exited with code 1 before asking for a trial: ImportError: x'
  )
  # The supervisor keeps the record of the trials lost with a worker, each with its time.
  assert [{k: v for k, v in r.items() if k != 'time'} for r in supervisor.lost] == [
    first.lost,
    second.lost,
  ]
  assert all(isinstance(r['time'], float) for r in supervisor.lost)


def test_workers_that_keep_dying_end_the_search():
  from tfx_pipeline.parallel.supervisor import GIVE_UP, RESTART, Supervisor, WorkerExit

  supervisor = Supervisor(workers=1, max_trials=1, max_retries=1)  # 1 + 1 * 2 replacements.
  for _ in range(3):
    assert supervisor.on_exit(WorkerExit('tuner0', 1)).action == RESTART
  gave_up = supervisor.on_exit(WorkerExit('tuner0', 1))
  assert gave_up.action == GIVE_UP
  assert gave_up.reason == 'tuner workers keep dying (last: tuner0 exited with code 1): (no output)'


def test_threads_are_shared_out():
  assert pool.threads_per_worker(2, cpus=16) == 8
  assert pool.threads_per_worker(3, cpus=2) == 1
  assert pool.describe_exit(-signal.SIGKILL) == 'killed by SIGKILL'
  assert pool.describe_exit(3) == 'exited with code 3'


def test_workers_run_an_importable_module():
  import importlib

  assert callable(importlib.import_module(pool.WORKER_MODULE).main)


def test_the_local_pipeline_runs_a_parallel_tuner(tiny_data, tmp_path):
  from tfx_pipeline.config import PipelineConfig
  from tfx_pipeline.pipeline import create_pipeline

  def tuner(**kwargs):
    pipeline = create_pipeline(
      PipelineConfig(
        pipeline_name='test', pipeline_root=str(tmp_path / 'root'), data_root=tiny_data, **kwargs
      )
    )
    return {c.id: c for c in pipeline.components}['Tuner']

  parallel = tuner(parallel_trials=2)
  assert isinstance(parallel, component.ParallelTuner)
  assert '"num_parallel_trials": 2' in parallel.exec_properties['tune_args']
  # One trial at a time: the same component, whose executor runs TFX's own search.
  sequential = tuner()
  assert isinstance(sequential, component.ParallelTuner)
  assert '"num_parallel_trials": 1' in sequential.exec_properties['tune_args']
  # Both read the BackboneFeatures step's artifact.
  for node in (parallel, sequential):
    assert node.inputs['features'].producer_component_id == 'BackboneFeatures'


def test_parallel_trials_below_one_is_one_error_line(capsys):
  from tfx_pipeline.local import cli

  assert cli.main(['--parallel-trials', '0']) == 2
  err = capsys.readouterr().err.strip()
  assert err == 'error: --parallel-trials 0: must be at least 1.'
  args = cli.run_parser().parse_args(['--parallel-trials', '3'])
  assert cli.config_from_args(args).parallel_trials == 3


def test_a_worker_ends_when_its_tuner_process_is_killed(tmp_path):
  import subprocess
  import sys

  from tests.conftest import REPO

  pid_file = tmp_path / 'worker.pid'
  # parent (killed below) -> worker: the watch in tfx_pipeline.parallel.worker, then a long sleep.
  worker = (
    'import os, time; from tfx_pipeline.parallel.worker import _exit_with_parent; '
    f'_exit_with_parent(0.1); open({str(pid_file)!r}, "w").write(str(os.getpid())); '
    'time.sleep(600)'
  )
  parent_code = (
    'import subprocess, sys, time; '
    f'subprocess.Popen([sys.executable, "-c", {worker!r}]); time.sleep(600)'
  )
  parent = subprocess.Popen(
    [sys.executable, '-c', parent_code], cwd=REPO, env={**os.environ, 'PYTHONPATH': REPO}
  )
  try:
    deadline = time.monotonic() + 60  # Guards against a hung test, not timing checks.
    while not (pid_file.exists() and pid_file.read_text()):
      assert time.monotonic() < deadline
      time.sleep(0.1)
    worker_pid = int(pid_file.read_text())
  finally:
    parent.kill()
    parent.wait()
  deadline = time.monotonic() + 60
  while True:
    try:
      with open(f'/proc/{worker_pid}/stat') as f:
        if f.read().rsplit(')', 1)[1].split()[0] == 'Z':
          break  # Exited; its new parent has not reaped it yet.
    except FileNotFoundError:
      break  # Exited and reaped.
    if time.monotonic() > deadline:
      os.kill(worker_pid, signal.SIGKILL)
      pytest.fail('the worker outlived its tuner process')
    time.sleep(0.1)


def test_lost_trials_accumulate_across_runs(tmp_path):
  first = {'trial': '1', 'worker': 'tuner0', 'exit': 'killed by SIGKILL', 'outcome': 'rerun'}
  second = {**first, 'trial': '4', 'outcome': 'failed'}
  pool.record_lost(str(tmp_path), [first])
  pool.record_lost(str(tmp_path), [second])
  assert pool.load_lost(str(tmp_path)) == [first, second]
