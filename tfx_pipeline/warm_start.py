"""Warm starts: a rehearsal's tasks and job replicas fork from a process that has imported TF.

A task's container runs `python -m MODULE ARGS...`, and importing TensorFlow,
TFX and the rest takes ~11 s of CPU before the module does anything: most of
a tiny rehearsal's time. `Server` imports those libraries once (never this
project's own code, which each task imports afresh from the image stand-in)
and then forks one child per command. A child is a new process with its own
process group (or its requester's), working directory, environment,
`sys.path` (as `python` builds it from that `PYTHONPATH`), `sys.argv` and
stdout/stderr (the requester's pipe);
it runs the module (or script) as `__main__` and exits with its code, as the
container's process would. What differs: environment variables that
TensorFlow reads while it is imported take the server's values.

`start(argv, cwd, env)` returns a `subprocess.Popen` look-alike (pid,
stdout, poll, wait, terminate). Stopping the server (`Server.stop`) stops
every process it forked and everything they started.

Who uses it: the rehearsal (its tasks and the jobs' replicas) and the test
suite (tests/runs.py) start a server and name it in ADDRESS_ENV; where that
variable is set, a parallel search's workers (tfx_pipeline/parallel/pool.py)
start from it too.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from typing import Dict, List, Optional, Tuple

# The environment variable that tells a process (a task, and so its job replicas) the server.
ADDRESS_ENV = 'FLOWER_TUNER_WARM_STARTS'
# What a container's Python imports before a task does anything: the image's libraries.
PRELOAD = (
  'tensorflow',
  'keras',
  'apache_beam',
  'tensorflow_transform',
  'tensorflow_model_analysis',
  'keras_tuner',
  'tfx.v1',
  'tfx.components',
  'tfx.extensions.google_cloud_ai_platform.tuner.executor',
  'tfx.extensions.google_cloud_ai_platform.trainer.executor',
)


class Server:
  """The forking process, `preload` imported; `stop` ends it and every process it started."""

  def __init__(self, cwd: str, env: Dict[str, str], preload: Tuple[str, ...] = PRELOAD):
    # A socket's path has at most 107 bytes: not under a deep rehearsal root.
    self._folder = tempfile.mkdtemp(prefix='flower-tuner-warm-')
    self.address = os.path.join(self._folder, 'socket')
    log = os.path.join(self._folder, 'server.log')  # What its imports print.
    with open(log, 'w') as errors:
      self._process = subprocess.Popen(
        [sys.executable, '-m', 'tfx_pipeline.warm_server', self.address, *preload],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,  # And so its children's.
        stdout=subprocess.PIPE,
        stderr=errors,
        start_new_session=True,  # Ctrl-C reaches the rehearsal, which stops it.
      )
    ready = self._process.stdout.readline()
    if ready.strip() != b'ready':
      self._process.wait()
      with open(log) as f:
        last = (f.read().strip().splitlines() or [''])[-1]
      shutil.rmtree(self._folder, ignore_errors=True)
      raise RuntimeError(f'the warm-start process failed: {last or self._process.returncode}')

  def stop(self) -> None:
    if self._process.poll() is None:
      self._process.terminate()
    self._process.wait()
    shutil.rmtree(self._folder, ignore_errors=True)


class Started:
  """A command the server started: what callers read of a `subprocess.Popen`."""

  def __init__(self, connection: socket.socket, pid: int, stdout):
    self._connection = connection
    self.pid = pid
    self.stdout = stdout
    self.returncode: Optional[int] = None

  def poll(self) -> Optional[int]:
    if self.returncode is None and select.select([self._connection], [], [], 0)[0]:
      self._read_status()
    return self.returncode

  def wait(self, timeout: Optional[float] = None) -> int:
    if self.returncode is None:
      self._connection.settimeout(timeout)
      try:
        self._read_status()
      except socket.timeout:
        raise subprocess.TimeoutExpired(str(self.pid), timeout) from None
    return self.returncode

  def terminate(self) -> None:
    self.send_signal(signal.SIGTERM)

  def kill(self) -> None:
    self.send_signal(signal.SIGKILL)

  def send_signal(self, sig: int) -> None:
    if self.returncode is None:
      try:
        os.kill(self.pid, sig)
      except ProcessLookupError:
        pass

  def _read_status(self) -> None:
    data = self._connection.recv(64)
    self.returncode = int(data.decode()) if data else -signal.SIGKILL
    self._connection.close()


def available() -> bool:
  return bool(os.environ.get(ADDRESS_ENV))


def start(
  argv: List[str],
  cwd: Optional[str] = None,
  env: Optional[Dict[str, str]] = None,
  stdout: Optional[int] = None,
  stderr: Optional[int] = None,
  address: Optional[str] = None,
  group: Optional[int] = None,
) -> Started:
  """Starts `argv` (`python -m MODULE ...` or `python SCRIPT ...`) from the server at `address`.

  `stdout`, `stderr`: file descriptors the child writes to (the caller keeps
  its own). Without `stdout`, a new pipe, read from `Started.stdout`; without
  `stderr`, where stdout goes. `address`: the ADDRESS_ENV variable's by default.
  `group`: a process group to join (the caller's, itself started by the same
  server), so that stopping that group stops it; by default, a group of its own.
  """
  if len(argv) < 2 or (argv[1] == '-m' and len(argv) < 3):
    raise ValueError(f'a warm start runs `python -m MODULE` or `python SCRIPT`, not {argv[:3]}')
  cwd = os.path.abspath(cwd or os.getcwd())
  request = {'argv': argv[1:], 'cwd': cwd, 'env': dict(os.environ if env is None else env)}
  request['group'] = group
  read, write = os.pipe() if stdout is None else (None, stdout)
  connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
  try:
    connection.connect(address or os.environ[ADDRESS_ENV])
    fds = [write, write if stderr is None else stderr]
    socket.send_fds(connection, [json.dumps(request).encode()], fds)
    pid = int(_line(connection))
  except BaseException:
    connection.close()
    if read is not None:
      os.close(read)
    raise
  finally:
    if read is not None:
      os.close(write)
  out = None if read is None else open(read, encoding='utf-8', errors='replace')
  return Started(connection, pid, out)


def run(argv: List[str], timeout: Optional[float] = None, **where) -> Tuple[int, str, str]:
  """`start`ed and waited for: (exit code, stdout, stderr); killed once `timeout` has passed.

  `where`: `start`'s `cwd`, `env` and `address`.
  """
  with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
    process = start(argv, stdout=out.fileno(), stderr=err.fileno(), **where)
    try:
      rc = process.wait(timeout)
    finally:
      process.kill()
    return (rc, *(f.seek(0) or f.read().decode(errors='replace') for f in (out, err)))


def _line(connection: socket.socket) -> str:
  data = b''
  while not data.endswith(b'\n'):
    chunk = connection.recv(1)
    if not chunk:
      raise RuntimeError('the warm-start process ended')
    data += chunk
  return data.decode()
