"""The conversion job: photos in class folders -> flower TFRecord shards, labels and metadata.

``data/convert.py`` (the command line) calls ``convert``. It plans the files
with ``data/photos.py``, then runs an Apache Beam job (DirectRunner here,
Dataflow by option) that turns each file into a record with ``data/images.py``
and ``data/records.py`` and writes the shards of each split. Files that are not
decodable photos are skipped, counted and named in the summary and in
``metadata.json``.
"""

import json
import math
import os
import time

import apache_beam as beam

from data import images, photos, records

METADATA_FILE = 'metadata.json'
_SKIPPED = 'skipped'


class ConvertError(ValueError):
  """The conversion cannot start; the message names the problem and the fix."""


# --------------------------------------------------------------------------- Beam


class ConvertPhoto(beam.DoFn):
  """Photo -> (split, serialized tf.Example), or a ``skipped`` output (relpath, reason)."""

  def __init__(self, total):
    super().__init__()
    self._total = total
    self._every = max(50, total // 20)
    self._seen = 0

  def process(self, photo):
    import tensorflow as tf

    self._seen += 1
    if self._seen % self._every == 0:
      # Per worker: the DirectRunner's single worker sees every file.
      print(f'  converted {self._seen}/{self._total} files', flush=True)
    try:
      with tf.io.gfile.GFile(photo.path, 'rb') as f:
        data = f.read()
      jpeg, height, width = images.to_rgb_jpeg(data)
    except (images.BadImage, tf.errors.OpError, OSError) as e:
      yield beam.pvalue.TaggedOutput(_SKIPPED, (photo.relpath, _reason(e)))
      return
    yield (
      photo.split,
      records.to_example(photo.relpath, photo.label, photo.class_name, jpeg, width, height),
    )


def _reason(error):
  if isinstance(error, images.BadImage):
    return str(error)
  return f'unreadable: {str(error).splitlines()[0]}'


def build_pipeline(p, plan, out, shards, tmp_dir):
  """Adds the conversion to Beam pipeline ``p``: shards per split, and skipped files as JSON."""
  converted = (
    p
    | 'Photos' >> beam.Create(plan.photos)
    | 'Convert'
    >> beam.ParDo(ConvertPhoto(len(plan.photos))).with_outputs(_SKIPPED, main='examples')
  )
  by_split = converted.examples | 'BySplit' >> beam.Partition(
    lambda kv, _: records.SPLITS.index(kv[0]), len(records.SPLITS)
  )
  for split, examples in zip(records.SPLITS, by_split):
    if shards.get(split):
      _ = (
        examples
        | f'{split}Examples' >> beam.Values()
        | f'Write{split}'
        >> beam.io.WriteToTFRecord(
          os.path.join(out, records.shard_prefix(split)),
          shard_name_template=records.SHARD_TEMPLATE,
          num_shards=shards[split],
        )
      )
  _ = (
    converted[_SKIPPED]
    | 'SkippedJson' >> beam.Map(json.dumps)
    | 'WriteSkipped' >> beam.io.WriteToText(os.path.join(tmp_dir, _SKIPPED), shard_name_template='')
  )


# --------------------------------------------------------------------------- plan & summary


def check_ratios(ratios):
  """Raises ConvertError unless the split fractions are usable."""
  if any(r < 0 for r in ratios.values()) or abs(sum(ratios.values()) - 1.0) > 1e-6:
    raise ConvertError(
      f'--train {ratios["train"]} --validation {ratios["validation"]} '
      f'--test {ratios["test"]}: use fractions >= 0 that sum to 1.'
    )
  if not ratios['train'] or not ratios['validation']:
    raise ConvertError(
      '--train and --validation must be above 0: the pipeline trains on '
      'train and evaluates on validation.'
    )


def shard_counts(plan, images_per_shard):
  """Shards per split: enough for ``images_per_shard`` photos each (none for an empty split)."""
  planned = {s: sum(p.split == s for p in plan.photos) for s in records.SPLITS}
  return {s: math.ceil(n / images_per_shard) for s, n in planned.items() if n}


def summarize(plan, skipped):
  """Counts of converted photos per split and class, given the skipped (relpath, reason)s."""
  skipped_paths = {relpath for relpath, _ in skipped}
  counts = {s: {c: 0 for c in plan.class_names} for s in records.SPLITS}
  for photo in plan.photos:
    if photo.relpath not in skipped_paths:
      counts[photo.split][photo.class_name] += 1
  return counts


def format_summary(plan, counts, skipped):
  """The lines the converter prints: a table of photos per class and split, then skips."""
  width = max(len(c) for c in plan.class_names + ['class', 'total'])
  header = ''.join(f'{s:>12}' for s in records.SPLITS)
  lines = [f'{"label":>5}  {"class":<{width}}{header}']
  for label, name in enumerate(plan.class_names):
    row = ''.join(f'{counts[s][name]:>12}' for s in records.SPLITS)
    lines.append(f'{label:>5}  {name:<{width}}{row}')
  totals = ''.join(f'{sum(counts[s].values()):>12}' for s in records.SPLITS)
  lines.append(f'{"":>5}  {"total":<{width}}{totals}')
  left_out = sorted(skipped) + sorted(plan.ignored)
  lines.append(
    f'skipped {len(skipped)} of {len(plan.photos)} files'
    + (f', ignored {len(plan.ignored)} outside class folders' if plan.ignored else '')
    + (':' if left_out else '')
  )
  lines += [f'  {relpath}: {reason}' for relpath, reason in left_out]
  for split in ('train', 'validation'):
    for name in plan.class_names:
      if not counts[split][name]:
        lines.append(
          f'warning: class {name} has no {split} photos: add photos, or change --train/--validation'
        )
  return lines


def write_metadata(out, plan, counts, skipped, ratios, shards, data_root):
  import tensorflow as tf

  with tf.io.gfile.GFile(os.path.join(out, records.LABELS_FILE), 'w') as f:
    f.write(''.join(f'{name}\n' for name in plan.class_names))
  metadata = {
    'source': data_root,
    'classes': plan.class_names,
    'ratios': ratios,
    'shards': shards,
    'counts': counts,
    'skipped': [{'file': relpath, 'reason': reason} for relpath, reason in sorted(skipped)],
    'ignored': [{'file': relpath, 'reason': reason} for relpath, reason in plan.ignored],
  }
  with tf.io.gfile.GFile(os.path.join(out, METADATA_FILE), 'w') as f:
    json.dump(metadata, f, indent=2)
    f.write('\n')


def _is_local(path):
  return '://' not in path


def _check_paths(data_root, out, beam_args):
  """Raises ConvertError for folders the conversion cannot use."""
  if _is_local(data_root) and _is_local(out):
    root, target = os.path.abspath(data_root), os.path.abspath(out)
    if target == root or target.startswith(root + os.sep):
      raise ConvertError(
        f'--out {out} is inside --data-root {data_root}: its shards '
        'would be read as photos; write them somewhere else.'
      )
  if '--runner=DataflowRunner' in beam_args:
    if _is_local(data_root) or _is_local(out):
      raise ConvertError(
        'DataflowRunner workers cannot see local folders: use gs:// '
        'paths for --data-root and --out.'
      )
    if not any(
      a.split('=')[0] in ('--setup_file', '--sdk_container_image', '--extra_package')
      for a in beam_args
    ):
      raise ConvertError(
        "DataflowRunner workers need this project's data/ package: pass "
        '--sdk_container_image (an image with the project installed) or '
        '--setup_file.'
      )


def _plan(data_root, out, ratios, overwrite, beam_args):
  """(the photos and their splits, the shards of an earlier conversion in `out`).

  Raises ConvertError, before anything is written, for unusable input.
  """
  import tensorflow as tf

  check_ratios(ratios)
  _check_paths(data_root, out, beam_args)
  existing = tf.io.gfile.glob(os.path.join(out, records.shard_prefix('*') + '.tfrecord-*'))
  if existing and not overwrite:
    raise ConvertError(
      f'--out {out} already holds {len(existing)} converted shards: '
      'pass --overwrite to replace them, or choose another --out.'
    )
  try:
    return photos.find_photos(data_root, ratios), existing
  except ValueError as e:
    raise ConvertError(str(e)) from e


def _write_shards(plan, out, shards, beam_args) -> list:
  """Runs the Beam conversion; returns the files it skipped, as (path, reason)."""
  import tensorflow as tf

  tmp_dir = os.path.join(out, '.convert-tmp')
  options = beam.options.pipeline_options.PipelineOptions(list(beam_args))
  with beam.Pipeline(options=options) as p:
    build_pipeline(p, plan, out, shards, tmp_dir)
  with tf.io.gfile.GFile(os.path.join(tmp_dir, _SKIPPED)) as f:
    skipped = [tuple(json.loads(line)) for line in f if line.strip()]
  tf.io.gfile.rmtree(tmp_dir)
  return skipped


def convert(
  data_root,
  out,
  ratios=None,
  images_per_shard=1000,
  overwrite=False,
  beam_args=('--runner=DirectRunner',),
  echo=print,
):
  """Converts ``data_root`` into ``out``; returns counts, skipped files, classes and shards.

  ``beam_args`` are Apache Beam pipeline options, ``--runner=...`` included.
  Raises ConvertError, before anything is written, for unusable input.
  """
  import tensorflow as tf

  ratios = dict(photos.DEFAULT_RATIOS if ratios is None else ratios)
  plan, existing = _plan(data_root, out, ratios, overwrite, beam_args)
  shards = shard_counts(plan, images_per_shard)
  echo(
    f'found {len(plan.photos)} files in {len(plan.class_names)} classes under {data_root}; '
    + ', '.join(f'{s}: {sum(p.split == s for p in plan.photos)}' for s in records.SPLITS)
  )
  tf.io.gfile.makedirs(out)
  for path in existing:  # Stale shards would be read alongside the new ones.
    tf.io.gfile.remove(path)
  start = time.monotonic()
  skipped = _write_shards(plan, out, shards, beam_args)
  seconds = time.monotonic() - start
  counts = summarize(plan, skipped)
  write_metadata(out, plan, counts, skipped, ratios, shards, data_root)
  for line in format_summary(plan, counts, skipped):
    echo(line)
  converted = len(plan.photos) - len(skipped)
  echo(
    f'wrote {sum(shards.values())} shards, {records.LABELS_FILE} and {METADATA_FILE} '
    f'to {out}: {converted} photos in {seconds:.1f}s '
    f'({len(plan.photos) / seconds:.0f} files/s)'
  )
  echo(f'next: python run_local.py --data-root {out}')
  return {'counts': counts, 'skipped': skipped, 'classes': plan.class_names, 'shards': shards}
