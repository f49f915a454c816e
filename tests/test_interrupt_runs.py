"""Ctrl-C stops a real run within seconds, wherever it is, and the same command resumes it.

One pipeline root, one command, run five times: SIGINT during the data check,
during Transform, in the middle of a trial, during the Trainer, and then to
its end. Each interrupted run exits 130 with one last line; the next one
starts from what the others finished (TFX's cache, the search's trials).
"""

import dataclasses
import os
import re
import signal
import subprocess
import time
from typing import List, Optional

import pytest

from tests import tiny
from tests.conftest import REPO
from tests.console_lines import strays
from tests.runs import argv, env, popen
from tfx_pipeline.local.interrupt import EXIT_CODE, INTERRUPTED

pytestmark = pytest.mark.pipeline
# From the signal to the process's exit; the forced exit comes at 15 s.
STOPS_WITHIN_SECONDS = 12


@dataclasses.dataclass
class Stopped:
  rc: int
  lines: List[str]
  seconds: Optional[float]  # From SIGINT to exit.
  served: List[str] = dataclasses.field(default_factory=list)  # Pushed models after it.


def run_until(data, root, pattern: Optional[str], delay: float, cold=False) -> Stopped:
  """Runs the command; `delay` seconds after a line matching `pattern`, sends it SIGINT.

  Started warm (tests/runs.py) unless `cold`: the data check needs a cold
  start's pace to be interrupted half-way.
  """
  flags = ['--data-root', data, '--pipeline-root', root, *tiny.flags()]
  if cold:
    pipes = {'stdout': subprocess.PIPE, 'stderr': subprocess.STDOUT, 'text': True}
    process = subprocess.Popen(argv(*flags), cwd=REPO, env=env(), **pipes)
  else:
    process = popen(['run_local.py', *flags])
  lines, sent = [], None
  try:
    for line in process.stdout:
      lines.append(line.rstrip('\n'))
      if pattern and sent is None and re.search(pattern, line):
        time.sleep(delay)
        sent = time.monotonic()
        process.send_signal(signal.SIGINT)
    process.wait(timeout=900)
  finally:
    if process.poll() is None:
      process.kill()
      process.wait()
  served = os.path.join(root, 'serving_model', 'flower-tuner')
  return Stopped(
    process.returncode,
    lines,
    time.monotonic() - sent if sent else None,
    sorted(os.listdir(served)) if os.path.isdir(served) else [],
  )


def _assert_stopped(stopped: Stopped, must_not_show: str) -> None:
  assert stopped.seconds is not None, 'the run ended before the signal:\n' + '\n'.join(
    stopped.lines
  )
  assert stopped.rc == EXIT_CODE, '\n'.join(stopped.lines)
  assert stopped.lines[-1] == INTERRUPTED
  assert stopped.seconds < STOPS_WITHIN_SECONDS, stopped.seconds
  assert strays(stopped.lines) == []
  assert not any(must_not_show in line for line in stopped.lines), stopped.lines


@pytest.fixture(scope='module')
def runs(tiny_data, tmp_path_factory):
  root = str(tmp_path_factory.mktemp('interrupted') / 'root')
  stops = {}
  stops['data check'] = run_until(tiny_data, root, r'^backbone: ', 0.5, cold=True)
  stops['Transform'] = run_until(tiny_data, root, r'\] Transform \.\.\.$', 2)
  stops['trial'] = run_until(tiny_data, root, r'^trial 1/', 0.5)
  stops['Trainer'] = run_until(tiny_data, root, r'\] Trainer \.\.\.$', 2)
  return root, stops, run_until(tiny_data, root, None, 0)


def test_ctrl_c_during_the_data_check(runs):
  _, stops, _ = runs
  _assert_stopped(stops['data check'], must_not_show='ImportExampleGen')


def test_ctrl_c_during_transform(runs):
  _, stops, _ = runs
  _assert_stopped(stops['Transform'], must_not_show='Transform done')
  # What the first run did not finish, this one did: the data check.
  assert any(line.startswith('data check: ') for line in stops['Transform'].lines)


def test_ctrl_c_in_the_middle_of_a_trial(runs):
  _, stops, _ = runs
  stopped = stops['trial']
  _assert_stopped(stopped, must_not_show='Tuner done')
  assert any('Transform done' in line for line in stopped.lines)  # Transform ran this time.


def test_ctrl_c_during_the_trainer(runs):
  _, stops, _ = runs
  stopped = stops['Trainer']
  _assert_stopped(stopped, must_not_show='Trainer done')
  # The search resumed where the Ctrl-C left it: finished trials were not run again.
  (resumed,) = [line for line in stopped.lines if line.startswith('tuning: ')]
  done = int(re.search(r'\((\d+) trials already done\)', resumed).group(1))
  assert 1 <= done < 5
  trials = [line for line in stopped.lines if line.startswith('trial ')]
  assert len(trials) == 5 - done and trials[0].startswith(f'trial {done + 1}/5:')
  assert stopped.served == []  # Nothing pushed.


def test_the_same_command_then_finishes_the_run(runs):
  root, _, final = runs
  assert final.rc == 0, '\n'.join(final.lines)
  assert strays(final.lines) == []
  cached = {
    m.group(1) for m in (re.match(r'\[\d+/\d+\] (\w+) cached$', line) for line in final.lines) if m
  }
  assert cached == {
    'ImportExampleGen',
    'StatisticsGen',
    'SchemaGen',
    'ExampleValidator',
    'Transform',
    'BackboneFeatures',
    'Tuner',
  }
  assert any(line.startswith('pushed model: ') for line in final.lines)
  assert len(final.served) == 1
  # Every interrupted run left its log, and released the root.
  assert len(os.listdir(os.path.join(root, 'logs'))) >= 5
  with open(os.path.join(root, 'run.lock')) as f:
    assert f.read() == ''
