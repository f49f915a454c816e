"""Class names, read from the vocabulary Transform computed over the data."""

from typing import List

import tensorflow_transform as tft

from modules import features


def class_names(tf_transform_output: tft.TFTransformOutput) -> List[str]:
  """Returns the class names indexed by label id (0..K-1).

  Raises ValueError when the data gives one id two names or leaves an id out,
  since either would make the model's outputs mean the wrong class.
  """
  names = {}
  for entry in tf_transform_output.vocabulary_by_name(features.LABEL_NAMES_VOCAB):
    label_id, _, name = entry.decode('utf-8').partition(':')
    names.setdefault(int(label_id), set()).add(name)
  for label_id, found in sorted(names.items()):
    if len(found) > 1:
      raise ValueError(
        f'label {label_id} has several class names in the data '
        f'({", ".join(sorted(found))}): fix image/class/text.'
      )
  missing = sorted(set(range(max(names, default=-1) + 1)) - set(names))
  if not names or missing or min(names) < 0:
    raise ValueError(
      f'label ids in the data must be 0..K-1; found {sorted(names)}: '
      'relabel the data so every class from 0 up has examples.'
    )
  return [names[i].pop() for i in range(len(names))]
