"""tfx_pipeline/warm_start.py: a forked child is the process `python ARGV...` would have started."""

import json
import os
import select
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import REPO
from tfx_pipeline import warm_start

# Prints what a process knows of itself, then exits with the code it is given.
SCRIPT = """
import json, os, sys
print(json.dumps({
  'pid': os.getpid(), 'pgid': os.getpgid(0), 'cwd': os.getcwd(), 'argv': sys.argv,
  'path0': sys.path[0], 'flag': os.environ.get('FLAG'),
  'project_imported': [m for m in sys.modules if m.split('.')[0] == 'tfx_pipeline'],
}), flush=True)
print('to stderr', file=sys.stderr, flush=True)
if sys.argv[-1] == 'raise':
  raise ValueError('broken')
sys.exit(int(sys.argv[-1]))
"""


# Without PYTHONUNBUFFERED (which CI machines set), so that buffering shows.
BUFFERED = {k: v for k, v in os.environ.items() if k != 'PYTHONUNBUFFERED'}


@pytest.fixture(scope='module')
def server():
  # A cheap preload: what is under test is the fork, not TensorFlow's import.
  started = warm_start.Server(REPO, BUFFERED, preload=('json',))
  yield started
  started.stop()


def _read(process):
  out = process.stdout.read()
  return process.wait(timeout=60), out


def test_a_script_runs_as_its_own_process(server, tmp_path):
  script = tmp_path / 'show.py'
  script.write_text(SCRIPT)
  env = {**os.environ, 'FLAG': 'set'}
  process = warm_start.start(
    [sys.executable, str(script), 'x', '3'], cwd=str(tmp_path), env=env, address=server.address
  )
  rc, out = _read(process)
  assert rc == 3
  first, err = out.splitlines()
  shown = json.loads(first)
  assert err == 'to stderr'  # stderr goes where stdout goes, when not given.
  assert shown['pid'] == process.pid != os.getpid()
  assert shown['pgid'] == process.pid  # A process group of its own.
  assert shown['cwd'] == str(tmp_path) and shown['flag'] == 'set'
  assert shown['argv'] == [str(script), 'x', '3']
  assert shown['path0'] == str(tmp_path)
  # The server's own copy of this project is forgotten: the child imports it afresh.
  assert shown['project_imported'] == []


def test_a_module_gets_the_working_directory_first_on_its_path(server, tmp_path):
  (tmp_path / 'shown.py').write_text(SCRIPT)
  out_file, err_file = tmp_path / 'out', tmp_path / 'err'
  with open(out_file, 'w') as out, open(err_file, 'w') as err:
    process = warm_start.start(
      [sys.executable, '-m', 'shown', '0'],
      cwd=str(tmp_path),
      stdout=out.fileno(),
      stderr=err.fileno(),
      address=server.address,
    )
    assert process.stdout is None and process.wait(timeout=60) == 0
  shown = json.loads(out_file.read_text())
  assert shown['argv'][1:] == ['0'] and shown['argv'][0].endswith('shown.py')
  assert shown['path0'] == str(tmp_path)
  assert err_file.read_text() == 'to stderr\n'


def test_an_exception_is_a_traceback_and_exit_code_1(server, tmp_path):
  script = tmp_path / 'show.py'
  script.write_text(SCRIPT)
  rc, out = _read(warm_start.start([sys.executable, str(script), 'raise'], address=server.address))
  assert rc == 1
  assert out.splitlines()[-1] == 'ValueError: broken' and 'Traceback' in out


# What Python does as it exits: threads joined, atexit handlers, buffered output flushed.
ENDING = """
import atexit, sys, threading, time
threading.Thread(target=lambda: (time.sleep(0.5), print('thread done'))).start()
atexit.register(print, 'atexit ran')
print('buffered', end='')  # No newline, no flush: only the exit writes it.
if sys.argv[-1] == 'interrupt':
  raise KeyboardInterrupt
sys.exit(int(sys.argv[-1]) if sys.argv[-1].isdigit() else sys.argv[-1])
"""


def _ended(argv, tmp_path, warm_address=None):
  """(exit code, stdout, stderr's last line) of `argv`, started warm or as a new process."""
  out, err = (open(tmp_path / name, 'w+') for name in ('out', 'err'))
  with out, err:
    if warm_address:
      process = warm_start.start(
        argv, env=BUFFERED, stdout=out.fileno(), stderr=err.fileno(), address=warm_address
      )
    else:
      process = subprocess.Popen(argv, env=BUFFERED, stdout=out, stderr=err)
    rc = process.wait(timeout=60)
    out.seek(0)
    err.seek(0)
    return rc, out.read(), err.read().strip().splitlines()[-1:]


@pytest.mark.parametrize('how', ['0', '3', 'a message', 'interrupt'])
def test_a_child_exits_as_python_would(server, tmp_path, how):
  script = tmp_path / 'ending.py'
  script.write_text(ENDING)
  argv = [sys.executable, str(script), how]
  (tmp_path / 'warm').mkdir()
  (tmp_path / 'cold').mkdir()
  warm = _ended(argv, tmp_path / 'warm', server.address)
  assert warm == _ended(argv, tmp_path / 'cold')
  assert warm[1] == 'bufferedthread done\natexit ran\n'


def test_a_signal_and_stopping_the_server_end_its_processes(tmp_path):
  server = warm_start.Server(REPO, dict(os.environ), preload=('json',))
  code = 'import time; print("up", flush=True); time.sleep(600)'
  (tmp_path / 'sleep.py').write_text(code)
  argv = [sys.executable, str(tmp_path / 'sleep.py')]
  killed = warm_start.start(argv, address=server.address)
  assert killed.stdout.readline() == 'up\n' and killed.poll() is None
  killed.send_signal(signal.SIGKILL)
  assert killed.wait(timeout=60) == -signal.SIGKILL
  left = warm_start.start(argv, address=server.address)
  assert left.stdout.readline() == 'up\n'
  with pytest.raises(subprocess.TimeoutExpired):
    left.wait(timeout=0.5)
  server.stop()
  deadline = time.monotonic() + 30
  while os.path.exists(f'/proc/{left.pid}') and _state(left.pid) != 'Z':
    assert time.monotonic() < deadline, 'the server left a child running'
    time.sleep(0.1)


@pytest.mark.parametrize('how', ['PYTHONUNBUFFERED', 'terminal'])
def test_output_is_buffered_as_python_buffers_it_at_start_up(server, tmp_path, how):
  """Unbuffered under PYTHONUNBUFFERED, line by line on a terminal: seen before the process ends."""
  import pty

  (tmp_path / 'wait.py').write_text('import time\nprint("up")\ntime.sleep(600)\n')
  argv = [sys.executable, str(tmp_path / 'wait.py')]
  if how == 'PYTHONUNBUFFERED':
    process = warm_start.start(argv, env={**BUFFERED, how: '1'}, address=server.address)
    fd = process.stdout.fileno()
  else:
    fd, slave = pty.openpty()
    process = warm_start.start(argv, env=BUFFERED, stdout=slave, address=server.address)
    os.close(slave)
  # Block-buffered output would come only when the process ends: not for 600 s.
  assert select.select([fd], [], [], 30)[0], 'nothing printed yet'
  assert os.read(fd, 100).decode().strip() == 'up'
  process.kill()
  assert process.wait(timeout=60) == -signal.SIGKILL


def test_a_process_can_join_a_group_and_is_stopped_with_it(server, tmp_path):
  """As a job's replicas join their task's group: one killpg stops them all."""
  (tmp_path / 'wait.py').write_text('import time\nprint("up", flush=True)\ntime.sleep(600)\n')
  argv = [sys.executable, str(tmp_path / 'wait.py')]
  leader = warm_start.start(argv, address=server.address)
  member = warm_start.start(argv, address=server.address, group=leader.pid)
  for process in (leader, member):
    assert process.stdout.readline() == 'up\n'
  assert os.getpgid(leader.pid) == leader.pid == os.getpgid(member.pid) != os.getpgid(0)
  os.killpg(leader.pid, signal.SIGKILL)
  assert leader.wait(timeout=60) == member.wait(timeout=60) == -signal.SIGKILL


def _state(pid):
  try:
    with open(f'/proc/{pid}/stat') as f:
      return f.read().rsplit(')', 1)[1].split()[0]
  except FileNotFoundError:
    return 'gone'


def test_a_bad_command_is_refused(server):
  with pytest.raises(ValueError, match='runs `python -m MODULE` or `python SCRIPT`'):
    warm_start.start([sys.executable], address=server.address)
