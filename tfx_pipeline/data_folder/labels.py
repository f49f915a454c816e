"""The label checks of the data check (check.py): every label has one name, in range, trained on.

`label_errors` reads the per-file summaries the data check's Beam scan wrote
and returns one message per problem, most telling first; `check` raises the
first. Label problems always stop the run: dropping records would hide them.
"""

from __future__ import annotations

import os
from typing import Dict, List, Optional

from data.records import LABELS_FILE  # Written beside the shards by data/convert.py.


def read_labels_file(data_root: str) -> Optional[List[str]]:
  """The class names of `labels.txt` beside the shards, by label id; None where there is none."""
  path = os.path.join(data_root, LABELS_FILE)
  if not os.path.isfile(path):
    return None
  with open(path) as f:
    return [line.strip() for line in f if line.strip()]


def where(summary: dict, record: dict) -> str:
  """`split train, file record 3 (rose.jpg)`: a record, as a message names it."""
  name = f' ({record["name"]})' if record.get('name') else ''
  return (
    f'split {summary["split"]}, {os.path.basename(summary["file"])} record {record["index"]}{name}'
  )


def label_errors(summaries: List[dict], labels_file: Optional[List[str]]) -> List[str]:
  """One message per label problem in the scanned files, most telling first."""
  names: Dict[int, Dict[str, tuple]] = {}  # label -> class name -> (summary, example record)
  for s in summaries:
    for label, texts in s['labels'].items():
      for text, entry in texts.items():
        names.setdefault(int(label), {}).setdefault(text, (s, entry['examples'][0]))
  if labels_file:
    num_classes, source = len(labels_file), f'the {len(labels_file)} lines of {LABELS_FILE}'
  else:
    num_classes = len({text for texts in names.values() for text in texts})
    source = f'the {num_classes} class names in the data'
  return (
    _record_errors(summaries)
    + _name_errors(names, labels_file, num_classes, source)
    + _untrained(summaries, labels_file, num_classes, source)
  )


def _record_errors(summaries: List[dict]) -> List[str]:
  """Files corrupt part-way, and records without a label or class name."""
  errors = [
    f'{s["file"]} is corrupt from record {s["corrupt_at"]} on (split '
    f'{s["split"]}): replace the file, or convert the photos again.'
    for s in summaries
    if s['corrupt_at'] is not None
  ]
  for s in summaries:
    for r in s['unlabelled']:
      errors.append(
        f'{where(s, r)} has no {r["missing"]}: every record needs a label id '
        'and its class name; fix the record or remove it.'
      )
  return errors


def _name_errors(names, labels_file, num_classes: int, source: str) -> List[str]:
  """Labels out of range, with several names, or named unlike labels.txt."""
  errors = []
  for label, texts in sorted(names.items()):
    s, r = next(iter(texts.values()))
    if not 0 <= label < num_classes:
      errors.append(
        f'{where(s, r)} has label {label}, outside 0..{num_classes - 1} '
        f'({source}): fix the label, or convert the photos again.'
      )
    elif len(texts) > 1:
      errors.append(
        f'label {label} has several class names ({", ".join(sorted(texts))}), '
        f'e.g. {where(s, r)}: fix image/class/text.'
      )
    elif labels_file and next(iter(texts)) != labels_file[label]:
      errors.append(
        f'{where(s, r)} names label {label} {next(iter(texts))!r}, but '
        f'{LABELS_FILE} says {labels_file[label]!r}: convert the photos again.'
      )
  return errors


def _untrained(summaries, labels_file, num_classes: int, source: str) -> List[str]:
  """Classes the train split has no record of."""
  if not any(s['split'] == 'train' for s in summaries):
    return []
  trained = {int(label) for s in summaries if s['split'] == 'train' for label in s['labels']}
  errors = []
  for label in sorted(set(range(num_classes)) - trained):
    name = f' ({labels_file[label]})' if labels_file else ''
    errors.append(
      f'split train has no records of label {label}{name}, one of 0..'
      f'{num_classes - 1} ({source}): the model could not learn it; add its photos.'
    )
  return errors
