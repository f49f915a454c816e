"""A local run's console and log: a few lines for a person, everything else in a file.

`run_local.py run` opens a `Session` before anything imports TensorFlow. In
the default (quiet) mode the process's stdout and stderr, file descriptors 1
and 2, go to the run's log, `<pipeline-root>/logs/<run id>.log`: TensorFlow's
C++ messages, absl / TFX / Beam logging, warnings, keras-tuner's tables,
Keras' epoch lines and the parallel search's workers (they inherit the
descriptors, or are echoed into them). Until the pipeline root is known to be
usable and the run holds it, that output is kept in a temporary file, copied
into the log once it opens; a run that stops before (a bad flag, a missing
data folder) leaves nothing under the root.

What a person reads goes to the terminal through `line` (and into the log
too): the lines that modules/runtime/console.py's callers and the runner write. A
`status` (the running trial, one per parallel worker) is drawn below them on a
terminal only, redrawn in place; a pipe or a file gets no status and no
control characters. `--verbose` changes nothing: every line goes to the
terminal as it comes, and there is no log file.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
import threading
from typing import Dict, Optional, TextIO

from modules.runtime import console as console_module

LOGS_DIR = 'logs'
# TF's C++ log level for the run (TF_CPP_MIN_LOG_LEVEL); 0: every message, into the log.
_TF_LOG_LEVEL = '0'
_LOG_FORMAT = '%(asctime)s %(levelname)s %(name)s: %(message)s'
# Erase the line the cursor is on, go to its start; go up one line.
_ERASE_LINE, _UP = '\r\x1b[K', '\x1b[1A'


def log_path(pipeline_root: str, run_id: str) -> str:
  return os.path.join(pipeline_root, LOGS_DIR, f'{run_id}.log')


class Screen:
  """Lines written to `stream`, with a status (one row per key) kept below them on a terminal.

  On a terminal (`tty`) the status rows are erased before a line is written and
  drawn again after it; elsewhere a status is dropped, so a pipe or a file gets
  the lines alone, without control characters.
  """

  def __init__(self, stream: TextIO, tty: Optional[bool] = None):
    self.stream = stream
    self.tty = _is_tty(stream) if tty is None else tty
    self._status: Dict[str, str] = {}
    self._drawn = 0  # Status rows on the terminal now.

  def line(self, text: str) -> None:
    self._erase()
    self.stream.write(text + '\n')
    self._draw()
    self.stream.flush()

  def status(self, key: str, text: Optional[str]) -> None:
    if not self.tty:
      return
    if text is None:
      if self._status.pop(key, None) is None:
        return
    else:
      self._status[key] = text
    self._erase()
    self._draw()
    self.stream.flush()

  def clear(self) -> None:
    """Erases the status rows, for good."""
    self._status.clear()
    self._erase()
    self.stream.flush()

  def _erase(self) -> None:
    if self._drawn:
      self.stream.write(_ERASE_LINE + (_UP + _ERASE_LINE) * (self._drawn - 1))
      self._drawn = 0

  def _draw(self) -> None:
    if not self._status:
      return
    width = _width(self.stream)
    rows = [_fit(text, width) for text in self._status.values()]
    self.stream.write('\n'.join(rows))
    self._drawn = len(rows)


class Session:
  """The console of one run; `start()` before TensorFlow is imported, `close()` at its end."""

  def __init__(self, verbose: bool = False):
    self.verbose = verbose
    self.log_path: Optional[str] = None
    self._lock = threading.RLock()
    self._started = False

  # Setting up and tearing down ------------------------------------------------

  def start(self) -> 'Session':
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', _TF_LOG_LEVEL)
    if self.verbose:
      logging.basicConfig(level=logging.INFO)
      self._screen = None
      self._started = True
      console_module.install(self)
      return self
    sys.stdout.flush()
    sys.stderr.flush()
    self._screen = Screen(_own_stream(sys.stdout))
    self._saved = {fd: os.dup(fd) for fd in (1, 2)}
    self._streams = (sys.stdout, sys.stderr)
    # Until the log opens, into an unnamed temporary file.
    self._buffer = tempfile.TemporaryFile()
    for fd in (1, 2):
      os.dup2(self._buffer.fileno(), fd)
    sys.stdout = open(1, 'w', buffering=1, closefd=False, errors='replace')
    sys.stderr = open(2, 'w', buffering=1, closefd=False, errors='replace')
    self._handler = logging.StreamHandler(sys.stderr)
    self._handler.setFormatter(logging.Formatter(_LOG_FORMAT))
    root = logging.getLogger()
    self._root_level = root.level
    root.addHandler(self._handler)
    root.setLevel(logging.INFO)
    self._started = True
    console_module.install(self)
    return self

  def open_log(self, path: str) -> None:
    """From now on into `path` (appended to), with what was written since `start()` first."""
    if self.verbose:
      return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with self._lock:
      sys.stdout.flush()
      sys.stderr.flush()
      log = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
      self._buffer.seek(0)
      with os.fdopen(os.dup(log), 'wb') as copy:
        shutil.copyfileobj(self._buffer, copy)
      for fd in (1, 2):
        os.dup2(log, fd)
      os.close(log)
      self._buffer.close()
      self._buffer = None
      self.log_path = path

  def close(self) -> None:
    """Back to the terminal: the status erased, stdout and stderr restored."""
    if not self._started:
      return
    self._started = False
    console_module.install(None)
    if self.verbose:
      return
    with self._lock:
      self._screen.clear()
    logging.getLogger().removeHandler(self._handler)
    logging.getLogger().setLevel(self._root_level)
    sys.stdout.flush()
    sys.stderr.flush()
    sys.stdout, sys.stderr = self._streams
    for fd, saved in self._saved.items():
      os.dup2(saved, fd)
      os.close(saved)
    if self._buffer is not None:
      self._buffer.close()
    if self._screen.stream is not self._streams[0]:
      self._screen.stream.close()

  def __enter__(self) -> 'Session':
    return self.start()

  def __exit__(self, *exc) -> None:
    self.close()

  # What a person reads -------------------------------------------------------

  def line(self, text: str) -> None:
    """A line on the terminal (above any status) and in the log.

    Paths under the current folder are shown relative to it (`shown`).
    """
    text = shown(text)
    with self._lock:
      if self.verbose:
        print(text, flush=True)
        return
      self._screen.line(text)
      print(text, flush=True)  # Into the log, among what led up to it.

  def status(self, key: str, text: Optional[str]) -> None:
    """Shows `text` under `key` below the lines, on a terminal only (None: removes it)."""
    if self._screen is None or not self._screen.tty:
      return
    with self._lock:
      self._screen.status(key, text)

  def write_now(self, text: str) -> None:
    """A last line from another thread (a forced exit), not waiting long for the lock."""
    locked = self._lock.acquire(timeout=1)
    try:
      if self._screen is None:
        print(text, flush=True)
      else:
        self._screen.clear()
        self._screen.line(text)
    finally:
      if locked:
        self._lock.release()


def end_with_error(session: Session, text: str) -> None:
  """Closes `session` and prints `error: TEXT` (one line) and the log's path, on stderr."""
  log = session.log_path
  session.close()
  print(shown(f'error: {" ".join(text.split())}'), file=sys.stderr)
  if log:
    print(shown(f'log: {log}'), file=sys.stderr)


def shown(text: str) -> str:
  """`text` with paths under the current folder relative to it, as a person would type them."""
  cwd = os.getcwd()
  return text if cwd == os.sep else text.replace(cwd + os.sep, '')


def _own_stream(stream: TextIO) -> TextIO:
  """Where the terminal stays reachable once descriptors 1 and 2 go to the log.

  A stream on descriptor 1 or 2 (sys.stdout) gets a copy of that descriptor;
  any other (a test's capture, a tee) is used as it is.
  """
  try:
    fd = stream.fileno()
  except (AttributeError, OSError, ValueError):
    return stream
  if fd not in (1, 2):
    return stream
  return open(os.dup(fd), 'w', buffering=1, encoding=stream.encoding, errors='replace')


def _is_tty(stream: TextIO) -> bool:
  try:
    return stream.isatty()
  except (AttributeError, ValueError):
    return False


def _width(stream: TextIO) -> int:
  try:
    columns = os.get_terminal_size(stream.fileno()).columns
  except (AttributeError, OSError, ValueError):
    columns = 0
  return columns if columns > 0 else 80  # A terminal that does not say: the usual width.


def _fit(text: str, width: int) -> str:
  """One terminal row: a longer status would wrap, and erasing it would miss a row."""
  return text if len(text) < width else text[: max(width - 4, 1)] + '...'
