"""Finds the photos in a folder of class sub-folders and gives each a split and label.

Called by ``data/convert.py`` before its Beam job: the plan (every file, its
class, label id and split) is decided here, so it is the same on every run and
every runner.

- Class names are the sub-folder names, sorted; the label id is the index in
  that sorted list, so adding photos never renumbers classes.
- The split of a photo comes from a SHA-256 hash of its path relative to the
  data root (``roses/123.jpg``), so it depends only on that path: moving the
  folder, adding other photos or rerunning never moves a photo between splits.
"""

import dataclasses
import hashlib
import os

from data import records

DEFAULT_RATIOS = {'train': 0.8, 'validation': 0.1, 'test': 0.1}


@dataclasses.dataclass(frozen=True)
class Photo:
  """One file under a class folder, and where it goes."""

  path: str  # as tf.io.gfile reads it (local or gs://)
  relpath: str  # "class/name.jpg", with "/" on every platform
  class_name: str
  label: int
  split: str


@dataclasses.dataclass(frozen=True)
class Plan:
  """What a conversion will read: classes (index = label id), photos, and files left out."""

  class_names: list
  photos: list
  ignored: list  # (relpath, reason) of files outside any class folder


def split_of(relpath, ratios):
  """The split ('train', 'validation' or 'test') for ``relpath``.

  ``ratios`` maps split names to fractions that sum to 1. The first 8 bytes
  of the path's SHA-256 give a number in [0, 1); the splits take consecutive
  ranges of it in the order of records.SPLITS.
  """
  digest = hashlib.sha256(relpath.encode('utf-8')).digest()
  position = int.from_bytes(digest[:8], 'big') / 2.0**64
  upper = 0.0
  for split in records.SPLITS:
    upper += ratios.get(split, 0.0)
    if position < upper:
      return split
  # Rounding can leave the top of the range uncovered; it belongs to the last split used.
  return [s for s in records.SPLITS if ratios.get(s, 0.0) > 0][-1]


def find_photos(data_root, ratios):
  """Returns the Plan for ``data_root``; raises ValueError when it has no class folders.

  Every file below a class folder (at any depth) is a candidate photo; which
  of them decode is decided later, per file, so a broken one is counted and
  named rather than silently left out. Hidden files and folders (".DS_Store")
  count too. Files directly in ``data_root`` belong to no class and are
  listed as ignored.
  """
  import tensorflow as tf  # tf.io.gfile reads local folders and gs:// alike.

  if not tf.io.gfile.isdir(data_root):
    raise ValueError(
      f'--data-root {data_root} is not a folder: point it at a folder '
      'with one sub-folder of photos per class.'
    )
  entries = sorted(tf.io.gfile.listdir(data_root))
  # gfile.listdir marks folders with a trailing "/" on some file systems (GCS).
  entries = [e.rstrip('/') for e in entries]
  class_names = sorted(e for e in entries if tf.io.gfile.isdir(os.path.join(data_root, e)))
  ignored = [(e, 'not in a class folder') for e in entries if e not in class_names]
  if not class_names:
    raise ValueError(
      f"--data-root {data_root} has no class sub-folders: put each class's "
      'photos in its own sub-folder, e.g. roses/ and tulips/.'
    )
  photos = []
  for label, class_name in enumerate(class_names):
    class_dir = os.path.join(data_root, class_name)
    for folder, _, files in sorted(tf.io.gfile.walk(class_dir)):
      for name in sorted(files):
        path = os.path.join(folder, name)
        relpath = os.path.relpath(path, data_root).replace(os.sep, '/')
        photos.append(Photo(path, relpath, class_name, label, split_of(relpath, ratios)))
    if not photos or photos[-1].class_name != class_name:
      # Its label id would have no examples, and the model needs every id 0..K-1.
      raise ValueError(
        f'class folder {class_dir} has no files: add its photos or remove the folder.'
      )
  return Plan(class_names, photos, ignored)
