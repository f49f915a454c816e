"""What the pipeline image holds: the checkout's folders that ./Dockerfile copies.

Vertex AI runs the jobs on the code in the image, so run_vertex.py checks that
a --hypermodel module is inside it before compiling; the rehearsal lays out the
same folders as the image's working directory (rehearsal/image.py).
"""

from __future__ import annotations

import os
from typing import List, Optional

from modules.module_config import split_reference
from tfx_pipeline.config import PROJECT_ROOT
from tfx_pipeline.options import UsageError


def copied_folders(dockerfile: str) -> List[str]:
  """The checkout's folders ./Dockerfile copies into the image (`COPY name/ ...`)."""
  folders = []
  with open(dockerfile) as f:
    for line in f:
      words = line.split()
      if words[:1] == ['COPY'] and len(words) >= 3:
        folders += [w.rstrip('/') for w in words[1:-1] if w.endswith('/')]
  return folders


def hypermodel_in_image(reference: str, dockerfile: Optional[str] = None) -> str:
  """The --hypermodel `reference` as the image lays it out: a file path relative to the checkout.

  Raises UsageError where the module is outside the checkout or in a folder
  ./Dockerfile does not copy, and HypermodelError where it does not load.
  """
  from modules.model import builder

  builder.load_builder(reference)
  path = builder.module_file(reference)
  inside = os.path.relpath(path, PROJECT_ROOT)
  if inside.startswith(os.pardir):
    raise UsageError(
      f'--hypermodel {reference}: {path} is outside the checkout, so the image cannot '
      f'hold it: move it into {PROJECT_ROOT} and copy its folder in ./Dockerfile.'
    )
  top = inside.split(os.sep)[0]
  if top not in copied_folders(dockerfile or os.path.join(PROJECT_ROOT, 'Dockerfile')):
    raise UsageError(
      f'--hypermodel {reference}: ./Dockerfile does not copy {top}/ into the image the '
      f'jobs run: add `COPY {top}/ {top}/` (and `!{top}/` to .dockerignore), rebuild '
      'and push it.'
    )
  if not builder.is_file_reference(reference):
    return reference
  return f'{inside}:{split_reference(reference)[1]}'
