"""The summary's PNGs: matplotlib without a display, each file written whole."""

from __future__ import annotations

import os

from modules.runtime import whole_file


def pyplot():
  """matplotlib.pyplot drawing to files only: servers and CI machines have no display."""
  import matplotlib

  matplotlib.use('Agg')
  import matplotlib.pyplot as plt

  return plt


def save(fig, path: str) -> str:
  """Writes `fig` as a PNG at `path`, whole or not at all, and frees it; returns `path`."""
  fig.tight_layout()
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with whole_file.writing(path) as partial:
    fig.savefig(partial, format='png')
  pyplot().close(fig)
  return path
