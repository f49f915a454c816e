"""One line per component as a local run goes: started, finished or cached, and its time."""

from __future__ import annotations

import logging
import time


class ComponentProgress(logging.Handler):
  """Turns TFX's per-component log records into short progress lines.

  LocalDagRunner logs "Component X is running/finished" and the launcher logs
  "A cached execution N is used" on the `absl` logger; everything else stays
  quiet unless the caller asks for verbose logs.
  """

  def __init__(self, total: int, echo=print):
    super().__init__(level=logging.INFO)
    self._total = total
    self._echo = echo
    self._started = {}
    self._cached = set()
    self._current = None
    self._done = 0

  def emit(self, record: logging.LogRecord) -> None:
    if record.msg == 'Component %s is running.':
      self._current = record.args[0]
      self._started[self._current] = time.monotonic()
      self._echo(f'[{self._done + 1}/{self._total}] {self._current} ...')
    elif record.msg == 'A cached execution %d is used.' and self._current:
      self._cached.add(self._current)
    elif record.msg == 'Component %s is finished.':
      name = record.args[0]
      self._done += 1
      seconds = time.monotonic() - self._started.get(name, time.monotonic())
      how = 'cached' if name in self._cached else f'done in {seconds:.1f}s'
      self._echo(f'[{self._done}/{self._total}] {name} {how}')
