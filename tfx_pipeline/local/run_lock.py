"""One local run per pipeline root at a time: a lock file under the root.

Two runs on one root would write the same ML Metadata store, search folders
and serving folder, and each would report the other's executions. `hold`
takes an exclusive `flock` on `<pipeline-root>/run.lock` for the run, and a
second run fails at once with `RunLockError`, naming the run that holds it
(process id, start time and command line, which the holder writes into the
file). The kernel releases the lock when the holding process ends in any way,
SIGKILL included, so a lock file left by a dead process is simply taken over.
Locks are per process and reentrant there (`run_local.py run` takes it
before opening its log, `runner.run` again).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import sys
import time
from typing import Dict, Iterator

LOCK_FILE = 'run.lock'

_held: Dict[str, int] = {}  # Pipeline roots this process holds -> how many times.


class RunLockError(RuntimeError):
  """The pipeline root is in use by another run; the message names it and the way out."""


def path(pipeline_root: str) -> str:
  return os.path.join(pipeline_root, LOCK_FILE)


@contextlib.contextmanager
def hold(pipeline_root: str) -> Iterator[None]:
  """Holds `pipeline_root` for this process; raises RunLockError if another run does."""
  root = os.path.abspath(pipeline_root)
  if root in _held:
    _held[root] += 1
    try:
      yield
    finally:
      _held[root] -= 1
    return
  os.makedirs(root, exist_ok=True)
  fd = os.open(path(root), os.O_RDWR | os.O_CREAT, 0o644)
  try:
    _lock_or_refuse(fd, fcntl.LOCK_EX, root)
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(_me()).encode() + b'\n', 0)
    _held[root] = 1
    try:
      yield
    finally:
      del _held[root]
      os.ftruncate(fd, 0)  # Released: nothing names a holder any more.
  finally:
    os.close(fd)  # Closing releases the lock.


def refuse_if_held(pipeline_root: str) -> None:
  """Raises RunLockError at once if another run holds `pipeline_root`; creates nothing.

  For before the slow start-up (TensorFlow's import): `hold` still decides.
  """
  root = os.path.abspath(pipeline_root)
  if root in _held:
    return
  try:
    fd = os.open(path(root), os.O_RDONLY)
  except OSError:  # No lock file (or no root yet): nobody holds it.
    return
  try:
    _lock_or_refuse(fd, fcntl.LOCK_SH, root)
  finally:
    os.close(fd)


def _lock_or_refuse(fd: int, mode: int, root: str) -> None:
  """`flock`s `fd` in `mode` at once; RunLockError naming the holder if another run has it."""
  try:
    fcntl.flock(fd, mode | fcntl.LOCK_NB)
  except OSError as e:
    if e.errno not in (errno.EAGAIN, errno.EACCES):
      raise
    raise RunLockError(_refusal(root, _read(fd))) from None


def _me() -> dict:
  return {'pid': os.getpid(), 'started': time.time(), 'command': sys.argv}


def _read(fd: int) -> dict:
  try:
    return json.loads(os.pread(fd, 65536, 0).decode() or '{}')
  except ValueError:  # Being written this very moment.
    return {}


def _refusal(root: str, holder: dict) -> str:
  who = 'another run'
  if holder.get('pid'):
    started = time.strftime('%H:%M:%S', time.localtime(holder.get('started', 0)))
    command = ' '.join(
      os.path.basename(a) if i == 0 else a for i, a in enumerate(holder.get('command') or [])
    )
    who = f'process {holder["pid"]} (started {started}: {command})'
  return (
    f'--pipeline-root {root} is in use by {who}: wait for it to end, stop it, '
    'or pass another --pipeline-root.'
  )
