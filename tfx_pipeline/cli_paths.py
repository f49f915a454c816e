"""Paths given on the command line, checked before any work starts.

A path that cannot be used ends the command with one line naming the flag, the
path and why (`PathError`), instead of a traceback from deep inside a run.
"""

from __future__ import annotations

import os
import tempfile


class PathError(ValueError):
  """A path flag that cannot be used; the message names the flag, the path and why."""


def writable_folder(flag: str, path: str) -> str:
  """`path` if it is, or can be made, a folder that files can be written in.

  Folders made only for the check are removed again, so a command that stops
  later (bad data, say) leaves nothing behind.
  """
  made = []
  existing = os.path.abspath(path)
  while not os.path.lexists(existing):
    made.append(existing)
    existing = os.path.dirname(existing)
  if not os.path.isdir(existing):
    where = 'it' if existing == os.path.abspath(path) else existing
    raise PathError(f'{flag} {path}: {where} is a file, not a folder.')
  try:
    os.makedirs(path, exist_ok=True)
    with tempfile.TemporaryFile(dir=path):
      pass
  except OSError as e:
    raise PathError(
      f'{flag} {path}: cannot create or write this folder ({e.strerror or e}).'
    ) from None
  finally:
    for folder in made:  # Deepest first.
      try:
        os.rmdir(folder)
      except OSError:
        pass
  return path


def existing_folder(flag: str, path: str, what: str) -> str:
  """`path` if it is a folder; `what` says what the flag takes."""
  if not os.path.isdir(path):
    why = 'is a file, not a folder' if os.path.exists(path) else 'no such folder'
    raise PathError(f'{flag} {path}: {why}; pass {what}.')
  return path
