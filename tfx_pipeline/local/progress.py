"""One line per component as a local run goes: started, finished or cached, and its time."""

from __future__ import annotations

import logging
import time
from typing import Optional

# A Ctrl-C waits for these to finish: a half-copied model must never be the latest one.
UNINTERRUPTED = ('Pusher',)


class ComponentProgress(logging.Handler):
  """Turns TFX's per-component log records into short progress lines.

  LocalDagRunner logs "Component X is running/finished" and the launcher logs
  "A cached execution N is used" on the `absl` logger; everything else goes
  to the run's log. With the run's `interrupt` (tfx_pipeline/local/interrupt.py),
  a requested stop is raised before the next component starts (the exception
  reaches the runner: a handler's `emit` is called inside the `logging.info`
  call), and Pusher runs to its end.
  """

  def __init__(self, total: int, echo=print, interrupt=None):
    super().__init__(level=logging.INFO)
    self._total = total
    self._echo = echo
    self._interrupt = interrupt
    self._started = {}
    self._cached = set()
    self.current: Optional[str] = None  # The component running now.
    self._done = 0

  def emit(self, record: logging.LogRecord) -> None:
    if record.msg == 'Component %s is running.':
      if self._interrupt:
        self._interrupt.check()
      self.current = record.args[0]
      self._started[self.current] = time.monotonic()
      self._echo(f'[{self._done + 1}/{self._total}] {self.current} ...')
      if self._interrupt and self.current in UNINTERRUPTED:
        self._interrupt.defer()
    elif record.msg == 'A cached execution %d is used.' and self.current:
      self._cached.add(self.current)
    elif record.msg == 'Component %s is finished.':
      name = record.args[0]
      self._done += 1
      self.current = None
      seconds = time.monotonic() - self._started.get(name, time.monotonic())
      how = 'cached' if name in self._cached else f'done in {seconds:.1f}s'
      self._echo(f'[{self._done}/{self._total}] {name} {how}')
      if self._interrupt and name in UNINTERRUPTED:
        self._interrupt.resume()  # Raises KeyboardInterrupt if a stop came meanwhile.

  def close(self) -> None:
    """The run is over, however it ended: no component holds off a Ctrl-C any more."""
    if self._interrupt:
      self._interrupt.release()
    super().close()
