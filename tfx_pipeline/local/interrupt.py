"""Ctrl-C during a local run: stop within seconds, leave nothing half-written, resume on rerun.

Python's own SIGINT handling raises KeyboardInterrupt wherever the main thread
is, and that is not enough: one that lands in a finalizer or a weakref
callback is printed as "Exception ignored in ..." and lost, and the run goes
on to the end. `Interrupt` (installed by `run_local.py run`) makes one Ctrl-C
stop the run:

- It raises KeyboardInterrupt at once, as Python does, and records the
  request (modules/runtime/stop.py), which the search and the Trainer check between
  batches and before each trial, and the component progress before each
  component: a lost exception is raised again at the next of those points.
- An exception lost in a finalizer is raised again at once too (through
  `sys.unraisablehook`).
- Pushing a model is not interrupted: a Ctrl-C during Pusher takes effect
  when it has finished, so no half-copied model is ever the latest one.
- If the run still has not stopped `FORCE_AFTER_SECONDS` later (a long call
  into C++), or on a second Ctrl-C, it exits at once (once any push is done).

What is left is what a killed run leaves, which the next run resumes from:
TFX's finished components (its cache), the search's finished trials
(modules/tuning/state.py), the feature cache. The runner prints
`INTERRUPTED` and exits with EXIT_CODE.
"""

from __future__ import annotations

import _thread
import os
import signal
import sys
import threading
import time
from typing import Callable, Optional

from modules.runtime import stop

INTERRUPTED = 'interrupted: rerun the same command to resume'
EXIT_CODE = 130  # 128 + SIGINT, as shells report a process Ctrl-C stopped.
FORCE_AFTER_SECONDS = 15.0
_RAISE_AGAIN_SECONDS = 0.05


class Interrupt:
  """SIGINT handling for one run; `on_force_exit(line)` writes the line a forced exit ends with."""

  def __init__(self, on_force_exit: Callable[[str], None] = print):
    self._on_force_exit = on_force_exit
    self._deferred = threading.Event()
    self._push_done = threading.Event()
    self._push_done.set()
    self._raise_again = False
    self._force_when_resumed = False
    self.requested_at: Optional[float] = None
    self.stopped = False  # The KeyboardInterrupt reached the runner: nothing to raise again.

  @property
  def requested(self) -> bool:
    return self.requested_at is not None

  def install(self) -> 'Interrupt':
    self._previous = signal.signal(signal.SIGINT, self._on_sigint)
    self._previous_hook = sys.unraisablehook
    sys.unraisablehook = self._on_unraisable
    return self

  def uninstall(self) -> None:
    self.stopped = True  # Whatever happens now is not this run's.
    signal.signal(signal.SIGINT, self._previous)
    sys.unraisablehook = self._previous_hook
    stop.withdraw()

  def __enter__(self) -> 'Interrupt':
    return self.install()

  def __exit__(self, *exc) -> None:
    self.uninstall()

  # Where the run may stop ----------------------------------------------------

  def check(self) -> None:
    """Raises KeyboardInterrupt if a stop was requested and has not reached the runner yet."""
    if self.requested and not self.stopped and not self._deferred.is_set():
      raise KeyboardInterrupt('stop requested')

  def defer(self) -> None:
    """Until `resume()`, a Ctrl-C only takes effect then (a push under way)."""
    self._push_done.clear()
    self._deferred.set()

  def resume(self) -> None:
    """Ends `defer()`; raises KeyboardInterrupt if a Ctrl-C came meanwhile."""
    self.release()
    if self._force_when_resumed:
      self._force_exit('a second Ctrl-C')
    self.check()

  def release(self) -> None:
    """Ends `defer()`, whatever came meanwhile (the run is over)."""
    self._deferred.clear()
    self._push_done.set()

  # Signals ---------------------------------------------------------------------

  def _on_sigint(self, signum, frame) -> None:
    if self._raise_again:  # From _on_unraisable, not from the terminal.
      self._raise_again = False
      self.check()
      return
    if self.requested:  # A second Ctrl-C: stop now, or right after the push under way.
      if self._deferred.is_set():
        self._force_when_resumed = True
      else:
        self._force_exit('a second Ctrl-C')
      return
    self.requested_at = time.monotonic()
    stop.request()
    threading.Thread(target=self._watchdog, name='interrupt-watchdog', daemon=True).start()
    self.check()

  def _on_unraisable(self, unraisable) -> None:
    self._previous_hook(unraisable)  # Printed, into the log.
    if issubclass(unraisable.exc_type, KeyboardInterrupt) and self.requested and not self.stopped:
      # Lost in a finalizer: raise it again in the main thread, once out of this hook
      # (raised in here, it would be lost the same way).
      threading.Timer(_RAISE_AGAIN_SECONDS, self._interrupt_main).start()

  def _interrupt_main(self) -> None:
    if not self.stopped:
      self._raise_again = True
      _thread.interrupt_main()

  def _watchdog(self) -> None:
    time.sleep(FORCE_AFTER_SECONDS)
    if not self.stopped:
      self._push_done.wait()  # Never in the middle of a push.
      self._force_exit(f'still running {FORCE_AFTER_SECONDS:.0f}s after Ctrl-C')

  def _force_exit(self, why: str) -> None:
    print(f'exiting at once: {why}', file=sys.stderr, flush=True)  # Into the log.
    self._on_force_exit(INTERRUPTED)
    os._exit(EXIT_CODE)
