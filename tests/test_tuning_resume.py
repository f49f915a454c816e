"""A killed search resumes without rerunning finished trials; new data or options start anew."""

import json
import os
import signal
import time

from modules.module_config import RunPaths
from modules.tuning import state as tuning_state
from tests import runs
from tests.conftest import REPO

# Runs tuner_fn and the search the way TFX's Tuner executor does. With --hang,
# the second fit blocks forever so the test can kill the process mid-search.
SEARCH_SCRIPT = r"""
import json, os, sys, time
import keras
from tfx import v1 as tfx
from modules import tuner as tuner_module
from tests.conftest import data_accessor

args = json.loads(sys.argv[1])

class LogFits(keras.callbacks.Callback):
  def __init__(self, log, hang):
    super().__init__()
    self.log, self.hang = log, hang

  def on_train_begin(self, logs=None):
    with open(self.log, 'a') as f:
      f.write('fit\n')
    with open(self.log) as f:
      fits = len(f.readlines())
    if self.hang and fits >= 2:
      open(self.log + '.hung', 'w').close()
      while True:
        time.sleep(1)

fn_args = tfx.components.FnArgs(
    train_files=args['train'], eval_files=args['eval'],
    transform_graph_path=args['transform'], working_dir=args['work'],
    data_accessor=data_accessor(), custom_config=args['custom_config'])
result = tuner_module.tuner_fn(fn_args)
result.fit_kwargs['callbacks'].append(LogFits(args['log'], args['hang']))
result.fit_kwargs['verbose'] = 0
result.tuner.search(**result.fit_kwargs)
print('BEST', json.dumps(result.tuner.get_best_hyperparameters()[0].values))
"""


def _trials(project):
  out = {}
  for name in sorted(os.listdir(project)):
    path = os.path.join(project, name, 'trial.json')
    if name.startswith('trial_') and os.path.exists(path):
      with open(path) as f:
        out[name] = json.load(f)
  return out


def _search_starter(transformed, tmp_path, tuning_dir: str, log: str):
  """A function that starts the search script in a process of its own: start(hang, work)."""
  transform_dir, files, config = transformed
  custom_config = {
    **config.to_custom_config(),
    'tuner': 'random',
    'max_trials': 3,
    'max_epochs': 1,
    **RunPaths(tuning_dir=tuning_dir).to_custom_config(),
  }
  script = tmp_path / 'search.py'
  script.write_text(SEARCH_SCRIPT)
  env = {
    'PYTHONPATH': REPO,
    'TF_CPP_MIN_LOG_LEVEL': '3',
    'OMP_NUM_THREADS': '1',
    'TF_NUM_INTEROP_THREADS': '1',
    'TF_NUM_INTRAOP_THREADS': '1',
  }

  def start(hang, work):
    args = dict(
      train=files['train'],
      eval=files['eval'],
      transform=transform_dir,
      work=str(tmp_path / work),
      custom_config=custom_config,
      log=log,
      hang=hang,
    )
    return runs.popen([str(script), json.dumps(args)], extra_env=env)  # Started warm.

  return start


def test_killed_search_resumes_without_rerunning_finished_trials(transformed, tmp_path):
  tuning_dir = str(tmp_path / 'tuning')
  log = str(tmp_path / 'fits.log')
  start = _search_starter(transformed, tmp_path, tuning_dir, log)
  first = start(hang=True, work='work1')
  deadline = time.monotonic() + 600  # A guard against a hung test, not a timing check.
  while not os.path.exists(log + '.hung'):
    assert first.poll() is None, first.stdout.read()
    assert time.monotonic() < deadline, 'the first search never reached its second trial'
    time.sleep(0.2)
  search_dir = tuning_state.latest_search(tuning_dir)
  project = os.path.join(search_dir, tuning_state.PROJECT_NAME)
  before = _trials(project)
  finished = {n: t for n, t in before.items() if t['status'] == 'COMPLETED'}
  assert len(finished) == 1, before
  finished_bytes = {n: open(os.path.join(project, n, 'trial.json'), 'rb').read() for n in finished}
  first.send_signal(signal.SIGKILL)
  first.wait()
  assert first.returncode == -signal.SIGKILL

  second = start(hang=False, work='work2')
  output = second.stdout.read()
  assert second.wait(timeout=600) == 0, output
  assert 'resuming the search' in output and '(1 trials already done)' in output, output

  after = _trials(project)
  assert sorted(after) == ['trial_0', 'trial_1', 'trial_2']
  assert all(t['status'] == 'COMPLETED' for t in after.values()), after
  for name, data in finished_bytes.items():
    assert open(os.path.join(project, name, 'trial.json'), 'rb').read() == data
  # trial 0 once, trial 1 killed then rerun, trial 2 once: no finished trial ran twice.
  with open(log) as f:
    assert len(f.readlines()) == 4
  best = max(after.values(), key=lambda t: t['score'])
  best_line = [line for line in output.splitlines() if line.startswith('BEST ')][-1]
  assert json.loads(best_line[5:]) == best['hyperparameters']['values']


def test_same_search_same_folder_and_changes_start_fresh(fn_args_for, tmp_path):
  base = str(tmp_path / 'tuning')
  lines = []

  def search_dir(overrides):
    fn_args = fn_args_for(
      {'tuner': 'random', 'max_trials': 2, **overrides}, paths=RunPaths(tuning_dir=base)
    )
    return tuning_state.search_dir(fn_args, echo=lines.append)

  first = search_dir({})
  assert os.path.dirname(first) == base and lines[-1].startswith('tuning: new search')
  assert search_dir({'epochs': 9}) == first  # Trainer-only options leave the search alone.
  changed = search_dir({'max_trials': 3})
  assert changed != first
  assert 'search options changed' in lines[-1] and 'fresh search' in lines[-1]
  assert tuning_state.latest_search(base) == changed


def test_changed_data_or_space_is_named(tmp_path):
  base = str(tmp_path)
  lines = []
  description = {'data': 'a', 'options': {'tuner': 'random'}, 'space': {'units': 1}}
  tuning_state.prepare(base, description, echo=lines.append)
  tuning_state.prepare(base, {**description, 'data': 'b'}, echo=lines.append)
  assert lines[-1].startswith('tuning: data changed')
  tuning_state.prepare(base, {**description, 'data': 'b', 'space': {'units': 2}}, echo=lines.append)
  assert lines[-1].startswith('tuning: search space changed')


def test_a_parallel_search_stopped_before_any_tuner_file_counts_its_finished_trials(tmp_path):
  """The chief reloads from the oracle's file, which exists before a worker writes its own."""
  project = tmp_path / tuning_state.PROJECT_NAME
  for trial_id, status in (('0', 'COMPLETED'), ('1', 'RUNNING')):
    (project / f'trial_{trial_id}').mkdir(parents=True)
    (project / f'trial_{trial_id}' / 'trial.json').write_text(json.dumps({'status': status}))
  assert tuning_state.completed_trials(str(tmp_path)) == 0  # Nothing keras-tuner would reload.
  (project / 'oracle.json').write_text('{}')
  assert tuning_state.completed_trials(str(tmp_path)) == 1
