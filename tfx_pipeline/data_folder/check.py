"""Reads every record of the data folder before any component runs: images and labels.

The local runner (`tfx_pipeline.local.runner.run`) calls `check` after
`data_layout.find_splits`. A Beam job decodes each image with the pipeline's own
decoder (`modules.preprocessing.decode_and_resize`) and reads each label, so bad
data ends the run with one line naming the split, file and record, instead of
a Beam traceback inside Transform or a model trained on wrong labels.

- A record whose image does not decode (or that is not a tf.Example, or has no
  `image/encoded`) follows the `--bad-images` policy: `fail` (the default)
  stops the run; `skip` drops it, names and counts it, and the pipeline reads a
  copy of the shards without it, under `<pipeline root>/data_check/`.
- Label problems always stop the run, since dropping records would hide them:
  a missing `image/class/label` or `image/class/text`, a label outside
  0..K-1 (K: the lines of `labels.txt` beside the shards, else the number of
  class names in the data), one label with two names, or a class with no
  train records.
- A file that stops being a TFRecord file part-way always stops the run.

Results are kept under `<pipeline root>/data_check/<fingerprint>/`, keyed by
the files' names, sizes and modification times (as ImportExampleGen's own
fingerprint is), so a rerun on unchanged data reads them back instead of
decoding again, and the cleaned copy keeps its timestamps and TFX's cache.
"""

from __future__ import annotations

import json
import os
from typing import Callable, Dict, List, NamedTuple

import apache_beam as beam
import tensorflow as tf

from modules import features
from modules.runtime import content_key
from tfx_pipeline.config import BAD_IMAGE_POLICIES
from tfx_pipeline.data_folder import labels
from tfx_pipeline.data_folder import layout as data_layout

FOLDER = 'data_check'
_VERSION = 2  # Bump when the checks change, so earlier results are not reused.
_EXAMPLES_PER_LABEL = 3
_LISTED = 20  # Skipped records listed one per line; the rest are counted.

_IMAGE, _LABEL, _TEXT, _NAME = (
  features.IMAGE_KEY,
  features.LABEL_KEY,
  features.LABEL_TEXT_KEY,
  features.FILENAME_KEY,
)


class DataCheckError(data_layout.DataLayoutError):
  """A record in the data folder cannot be trained on; the message names it and the fix."""


class Checked(NamedTuple):
  """What `check` found: the folder the pipeline reads, and how many records it holds."""

  data_root: str
  records: int


# --------------------------------------------------------------------------- Beam


class ScanFile(beam.DoFn):
  """(split, path) -> a summary of the file: record count, bad images, labels seen."""

  def setup(self):
    from modules.preprocessing import decode_and_resize

    # The pipeline's decoder, so what passes here decodes in Transform and serving.
    self._decode = tf.function(
      lambda encoded: decode_and_resize(encoded, 8),
      input_signature=[tf.TensorSpec([None], tf.string)],
    )

  def process(self, element):
    split, path = element
    summary = {
      'split': split,
      'file': path,
      'records': 0,
      'bad': [],
      'unlabelled': [],
      'labels': {},
      'corrupt_at': None,
    }
    index = -1
    try:
      for index, raw in enumerate(tf.data.TFRecordDataset(path).as_numpy_iterator()):
        summary['records'] += 1
        self._check_record(index, raw, summary)
    except tf.errors.DataLossError:
      summary['corrupt_at'] = index + 1
    yield summary

  def _check_record(self, index, raw, summary):
    try:
      feature = tf.train.Example.FromString(raw).features.feature
    except Exception:  # protobuf's DecodeError; any failure means the same here.
      summary['bad'].append({'index': index, 'name': '', 'problem': 'not a tf.train.Example'})
      return
    name = (
      feature[_NAME].bytes_list.value[0].decode('utf-8', 'replace')
      if (_NAME in feature and feature[_NAME].bytes_list.value)
      else ''
    )
    image = feature[_IMAGE].bytes_list.value if _IMAGE in feature else []
    problem = None
    if len(image) != 1:
      problem = f'no {_IMAGE}' if not image else f'{len(image)} images in {_IMAGE}'
    elif not image[0]:
      problem = 'empty image (0 bytes)'
    else:
      try:
        self._decode(tf.constant([image[0]]))
      except tf.errors.InvalidArgumentError:
        problem = 'not a decodable image (JPEG, PNG, GIF or BMP)'
    if problem:
      summary['bad'].append({'index': index, 'name': name, 'problem': problem})
      return
    label = feature[_LABEL].int64_list.value if _LABEL in feature else []
    text = feature[_TEXT].bytes_list.value if _TEXT in feature else []
    if len(label) != 1 or len(text) != 1:
      missing = _LABEL if len(label) != 1 else _TEXT
      summary['unlabelled'].append({'index': index, 'name': name, 'missing': missing})
      return
    seen = summary['labels'].setdefault(str(label[0]), {})
    entry = seen.setdefault(text[0].decode('utf-8', 'replace'), {'count': 0, 'examples': []})
    entry['count'] += 1
    if len(entry['examples']) < _EXAMPLES_PER_LABEL:
      entry['examples'].append({'index': index, 'name': name})


class CopyWithout(beam.DoFn):
  """(path, bad record indices, folder) -> the file copied into folder without those records."""

  def process(self, element):
    path, bad, folder = element
    target = os.path.join(folder, os.path.basename(path))
    if not bad:
      tf.io.gfile.copy(path, target, overwrite=True)
      return
    drop = set(bad)
    with tf.io.TFRecordWriter(target) as writer:
      for index, raw in enumerate(tf.data.TFRecordDataset(path).as_numpy_iterator()):
        if index not in drop:
          writer.write(raw)


# --------------------------------------------------------------------------- driver


def fingerprint(layout: data_layout.DataLayout, data_root: str) -> str:
  """A key for the data: each file's name, size and modification time, and labels.txt."""
  files = []
  for split, paths in sorted(layout.split_files.items()):
    for path in paths:
      stat = os.stat(path)
      files.append([split, path, stat.st_size, stat.st_mtime_ns])
  names = labels.read_labels_file(data_root)
  key = json.dumps([_VERSION, os.path.abspath(data_root), files, names])
  return content_key.of(key)


def scan(layout: data_layout.DataLayout, out_file: str, beam_args=()) -> List[dict]:
  """Runs ScanFile over every file of `layout`; returns (and keeps in out_file) the summaries."""
  if not os.path.isfile(out_file):
    elements = [
      (split, path) for split, paths in sorted(layout.split_files.items()) for path in paths
    ]
    options = beam.options.pipeline_options.PipelineOptions(list(beam_args))
    with beam.Pipeline(options=options) as p:
      _ = (
        p
        | 'Files' >> beam.Create(elements)
        | 'Scan' >> beam.ParDo(ScanFile())
        | 'Json' >> beam.Map(json.dumps, sort_keys=True)
        | 'Write' >> beam.io.WriteToText(out_file, shard_name_template='')
      )
  with open(out_file) as f:
    return sorted((json.loads(line) for line in f), key=lambda s: (s['split'], s['file']))


def check(
  data_root: str,
  layout: data_layout.DataLayout,
  pipeline_root: str,
  bad_images: str = 'fail',
  beam_args=(),
  echo: Callable[[str], None] = print,
) -> Checked:
  """Checks every record; returns the folder the pipeline should read, or raises DataCheckError.

  That folder is `data_root` itself, or under `skip` with bad images, a copy
  of its shards without them; `records` counts the records in it.
  """
  if bad_images not in BAD_IMAGE_POLICIES:
    raise ValueError(f'--bad-images {bad_images}: choose one of {", ".join(BAD_IMAGE_POLICIES)}.')
  work = os.path.join(pipeline_root, FOLDER, fingerprint(layout, data_root))
  os.makedirs(work, exist_ok=True)
  scanned = os.path.join(work, 'scan.jsonl')
  cached = os.path.isfile(scanned)
  summaries = scan(layout, scanned, beam_args)
  errors = labels.label_errors(summaries, labels.read_labels_file(data_root))
  if errors:
    more = f' ({len(errors) - 1} more problems, all in {scanned})' if len(errors) > 1 else ''
    raise DataCheckError(errors[0] + more)
  bad = [(s, r) for s in summaries for r in s['bad']]
  records = sum(s['records'] for s in summaries)
  echo(
    f'data check: {records} records in {len(summaries)} files'
    + (' (read back from an earlier check of these files)' if cached else '')
    + (f', {len(bad)} with bad images' if bad else ', every image decodes')
  )
  if bad and bad_images == 'fail':
    s, r = bad[0]
    raise DataCheckError(
      f'{labels.where(s, r)}: {r["problem"]}; {len(bad)} bad records in all '
      f'(listed in {scanned}): fix or remove them, or rerun with '
      '--bad-images skip to drop and count them.'
    )
  for split in sorted({s['split'] for s in summaries}):
    kept = sum(s['records'] - len(s['bad']) for s in summaries if s['split'] == split)
    if not kept:
      raise DataCheckError(
        f'split {split} of --data-root {data_root} has no usable records: add photos to it.'
      )
  if not bad:
    return Checked(data_root, records)
  _say_skipped(bad, scanned, echo)
  return Checked(_cleaned_copy(summaries, work, beam_args, echo), records - len(bad))


def _say_skipped(bad: List[tuple], scanned: str, echo: Callable[[str], None]) -> None:
  """The records `--bad-images skip` drops: counted by split, the first few named."""
  by_split: Dict[str, int] = {}
  for s, _ in bad:
    by_split[s['split']] = by_split.get(s['split'], 0) + 1
  echo(
    f'data check: skipping {len(bad)} records with bad images (--bad-images skip): '
    + ', '.join(f'{split} {n}' for split, n in sorted(by_split.items()))
  )
  for s, r in bad[:_LISTED]:
    echo(f'  skipped {labels.where(s, r)}: {r["problem"]}')
  if len(bad) > _LISTED:
    echo(f'  ... and {len(bad) - _LISTED} more, all in {scanned}')


def _cleaned_copy(summaries: List[dict], work: str, beam_args, echo) -> str:
  """Writes (once per fingerprint) the shards without their bad records; returns the folder."""
  folder = os.path.join(work, 'cleaned')
  done = folder + '.done'
  if not os.path.isfile(done):
    if tf.io.gfile.exists(folder):  # An interrupted earlier copy.
      tf.io.gfile.rmtree(folder)
    os.makedirs(folder)
    elements = [(s['file'], [r['index'] for r in s['bad']], folder) for s in summaries]
    options = beam.options.pipeline_options.PipelineOptions(list(beam_args))
    with beam.Pipeline(options=options) as p:
      _ = p | 'Files' >> beam.Create(elements) | 'Copy' >> beam.ParDo(CopyWithout())
    with open(done, 'w') as f:
      f.write('complete\n')
  echo(f'data check: the pipeline reads the shards without them, from {folder}')
  return folder
