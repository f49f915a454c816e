"""Where a run's progress goes: lines a person reads, and a status that updates in place.

User code calls `line(text)` for what stays (a finished trial) and
`status(text, key)` for what is going on now (the running trial's epoch; one
status per key, e.g. per worker of a parallel search). With no console
installed (user code run alone, on Vertex AI, in tests) a line is printed and
a status dropped. The local runner installs its console
(tfx_pipeline/local/console_log.py): lines reach the terminal and the run's log,
a status only a terminal, where it is redrawn on one line per key.
"""

from __future__ import annotations

from typing import Optional, Protocol


class Console(Protocol):
  def line(self, text: str) -> None: ...

  def status(self, key: str, text: Optional[str]) -> None: ...


_installed: Optional[Console] = None


def install(console: Optional[Console]) -> None:
  """Makes `console` the one `line` and `status` write to (None: print lines, drop status)."""
  global _installed
  _installed = console


def line(text: str) -> None:
  if _installed is None:
    print(text, flush=True)
  else:
    _installed.line(text)


def status(text: Optional[str], key: str = '') -> None:
  """Shows `text` as the current status under `key`; None clears it."""
  if _installed is not None:
    _installed.status(key, text)
