"""run_local.py as a person runs it: a process with its stdout on a pipe or on a terminal.

`run_local` and `OnTerminal` give a `Done`: what the process printed, and the
lines a person saw. `TinyRun` is a finished real run with what it recorded:
its console lines, its log, and the summary ML Metadata keeps of it.
"""

import atexit
import dataclasses
import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
import threading
import time
from typing import Any, List, Tuple

from tests.conftest import REPO
from tests.console_lines import screen


@dataclasses.dataclass
class Done:
  rc: int
  out: str  # stdout as written (a terminal's: with its control sequences)
  err: str
  seconds: float
  lines: List[str] = dataclasses.field(default_factory=list)  # What a person saw.

  def log(self) -> str:
    (path,) = [line[len('log: ') :] for line in self.lines if line.startswith('log: ')]
    with open(os.path.join(REPO, path)) as f:
      return f.read()

  def line(self, prefix: str) -> str:
    (found,) = [line for line in self.lines if line.startswith(prefix)]
    return found

  @property
  def run_id(self) -> str:
    """The run's id: its log's name."""
    return os.path.basename(self.line('log: '))[: -len('.log')]


def argv(*flags) -> List[str]:
  return [sys.executable, 'run_local.py', *flags]


def env(extra=None) -> dict:
  # As a person runs it: the runner sets TensorFlow's log level itself.
  base = {k: v for k, v in os.environ.items() if k != 'TF_CPP_MIN_LOG_LEVEL'}
  return {**base, **(extra or {})}


_server = None


def warm_address() -> str:
  """This test process's warm-start server (tfx_pipeline/warm_start.py), started once.

  A process it starts imports this project afresh but finds TensorFlow, TFX and
  the rest already imported: ~11 s of CPU less than a cold `python run_local.py`.
  Tests about what a process does before its log (stray output, the TF log
  level, imports) run cold.
  """
  global _server
  if _server is None:
    from tfx_pipeline import warm_start

    # The level the runner sets itself (tfx_pipeline/local/cli.py), before TF is imported.
    _server = warm_start.Server(REPO, env({'TF_CPP_MIN_LOG_LEVEL': '3'}))
    atexit.register(_server.stop)
    # The parallel runs' workers start from it too (tfx_pipeline/parallel/pool.py).
    os.environ[warm_start.ADDRESS_ENV] = _server.address
  return _server.address


def popen(args: List[str], extra_env=None, stdout=None, stderr=None, cwd=REPO):
  """`python *args` as a new process started warm: a Popen look-alike (warm_start.Started)."""
  from tfx_pipeline import warm_start

  return warm_start.start(
    [sys.executable, *args], cwd, env(extra_env), stdout, stderr, address=warm_address()
  )


def run(args: List[str], timeout=900, extra_env=None, cwd=REPO) -> Tuple[int, str, str]:
  """`python *args` started warm, to its end: (exit code, stdout, stderr)."""
  from tfx_pipeline import warm_start

  argv = [sys.executable, *args]
  return warm_start.run(argv, timeout, cwd=cwd, env=env(extra_env), address=warm_address())


def run_local(*flags, timeout=900, extra_env=None, cold=False) -> Done:
  """Runs `run_local.py *flags` to its end, its stdout and stderr on pipes; warm unless `cold`."""
  start = time.monotonic()
  if cold:
    done = subprocess.run(
      argv(*flags), cwd=REPO, capture_output=True, text=True, env=env(extra_env), timeout=timeout
    )
    out, err, rc = done.stdout, done.stderr, done.returncode
  else:
    rc, out, err = run(['run_local.py', *flags], timeout, extra_env)
  return Done(rc, out, err, time.monotonic() - start, out.splitlines())


class OnTerminal:
  """run_local.py with stdout on a pseudo-terminal, 160 columns wide; `wait()` gives a Done."""

  def __init__(self, *flags):
    self._start = time.monotonic()
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack('HHHH', 50, 160, 0, 0))
    err_read, err_write = os.pipe()
    self.process = popen(['run_local.py', *flags], stdout=slave, stderr=err_write)
    os.close(slave)
    os.close(err_write)
    self._err = open(err_read, errors='replace')
    self._master, self._raw, self._closed = master, [], threading.Event()
    threading.Thread(target=self._read, daemon=True).start()

  def _read(self):
    while True:
      try:
        chunk = os.read(self._master, 65536)
      except OSError:  # EIO: the process closed the terminal.
        break
      if not chunk:
        break
      self._raw.append(chunk)
    self._closed.set()

  @property
  def output(self) -> str:
    return b''.join(self._raw).decode(errors='replace')

  def wait_for(self, pattern: str, timeout=600) -> None:
    deadline = time.monotonic() + timeout
    while not re.search(pattern, self.output, re.M):
      assert self.process.poll() is None, self.output[-3000:]
      assert time.monotonic() < deadline, f'no {pattern!r} in:\n{self.output[-3000:]}'
      time.sleep(0.2)

  def wait(self, timeout=900) -> Done:
    self.process.wait(timeout=timeout)
    self._closed.wait(timeout=30)
    os.close(self._master)
    out = self.output
    return Done(
      self.process.returncode,
      out,
      self._err.read(),
      time.monotonic() - self._start,
      screen(out),
    )


@dataclasses.dataclass(frozen=True)
class TinyRun:
  """A finished run of run_local.py and what it recorded; its pipeline root is `config`'s."""

  flags: List[str]
  config: Any  # The PipelineConfig the flags make.
  done: Done
  summary: Any  # summary.RunSummary: what the run produced, read back from ML Metadata.


def tiny_run(data_root: str, pipeline_root: str) -> TinyRun:
  """The tiny configuration's run on `data_root`, pushing any model, as a person runs it."""
  from tests import tiny
  from tfx_pipeline.local import cli, summary

  flags = ['--data-root', data_root, '--pipeline-root', pipeline_root, *tiny.flags(tflite=True)]
  flags += ['--accuracy-threshold', '0']
  done = run_local(*flags, cold=True)  # The reference run: as a person starts it.
  assert done.rc == 0, done.out[-3000:] + done.err[-3000:]
  config = cli.config_from_args(cli.run_parser().parse_args(flags))
  return TinyRun(flags, config, done, summary.read(config, done.run_id))
