"""The rehearsal's stand-in for the pipeline image: the checkout's files that ./Dockerfile copies.

Every task and job replica runs with this folder as its working directory
and `PYTHONPATH`, as the image's `/pipeline`. A module that the image would
not hold (a folder the Dockerfile does not copy) is missing here too, so it
fails in the task that imports it, as on Vertex. The image's packages are
this project's own environment (the Dockerfile installs the same lock).
"""

from __future__ import annotations

import os
import shutil

from tfx_pipeline.vertex.image import copied_folders

IMAGE_FOLDER = 'image'
_NOT_COPIED = shutil.ignore_patterns('__pycache__', '*.pyc')


def stage(checkout: str, rehearsal_root: str) -> str:
  """Lays out the image's working directory under `rehearsal_root` afresh; returns it."""
  folder = os.path.join(rehearsal_root, IMAGE_FOLDER)
  shutil.rmtree(folder, ignore_errors=True)
  os.makedirs(folder)
  for name in copied_folders(os.path.join(checkout, 'Dockerfile')):
    shutil.copytree(os.path.join(checkout, name), os.path.join(folder, name), ignore=_NOT_COPIED)
  return folder
