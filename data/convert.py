"""``python -m data.convert``: photo folders (one sub-folder per class) -> flower TFRecords.

The output is what ``run_local.py --data-root`` reads: shards named like the
published set (``image_classification_builder-{train,validation,test}.tfrecord-
NNNNN-of-NNNNN``) in the published schema (``data/records.py``), plus
``labels.txt`` (class names, line N = label id N) and ``metadata.json`` (counts
per class and split, skipped files and why). The work is an Apache Beam job
(``data/conversion.py``): the DirectRunner by default, Dataflow with
``--runner DataflowRunner`` and its usual options.

Usage::

    python -m data.convert --data-root PHOTOS --out OUT [--train 0.8 --validation 0.1 --test 0.1]
    python -m data.convert --download --out OUT      # fetch flower_photos.tgz first
"""

import argparse
import logging
import os
import sys
import warnings

from data import download, photos


def _download_flags(p: argparse.ArgumentParser) -> None:
  """Where --download keeps the archive, and which archive it fetches."""
  p.add_argument(
    '--download-dir',
    default=None,
    help='where --download keeps flower_photos.tgz and flower_photos/ '
    '(default: the folder that holds --out)',
  )
  p.add_argument(
    '--download-url',
    default=download.FLOWER_PHOTOS_URL,
    help='archive --download fetches (default: %(default)s)',
  )


def parse_args(argv=None):
  """(converter options, Beam pipeline options); unknown flags go to Beam."""
  p = argparse.ArgumentParser(
    prog='python -m data.convert',
    description='Convert a folder of photos (one sub-folder per class) to flower TFRecords '
    'that run_local.py --data-root reads. Other flags (--project, --region, '
    '--temp_location, ...) go to Apache Beam.',
  )
  source = p.add_mutually_exclusive_group(required=True)
  source.add_argument('--data-root', help='folder with one sub-folder of photos per class')
  source.add_argument(
    '--download',
    action='store_true',
    help='fetch the public flower_photos.tgz into --download-dir and convert it',
  )
  p.add_argument(
    '--out', required=True, help='folder for the TFRecords, labels.txt and metadata.json'
  )
  for split, ratio in photos.DEFAULT_RATIOS.items():
    p.add_argument(
      f'--{split}',
      type=float,
      default=ratio,
      help=f'fraction of photos in {split} (default: %(default)s)',
    )
  p.add_argument(
    '--images-per-shard',
    type=int,
    default=1000,
    help='photos per TFRecord file at most (default: %(default)s)',
  )
  p.add_argument(
    '--overwrite', action='store_true', help='replace the shards of an earlier conversion in --out'
  )
  _download_flags(p)
  p.add_argument(
    '--runner',
    default='DirectRunner',
    help='Beam runner: DirectRunner (this machine, default) or DataflowRunner',
  )
  args, beam_args = p.parse_known_args(argv)
  if args.images_per_shard < 1:
    p.error('--images-per-shard must be at least 1')
  return args, [f'--runner={args.runner}'] + beam_args


def main(argv=None):
  args, beam_args = parse_args(argv)
  # Beam's, TF's and google-api-core's start-up chatter would bury the summary.
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
  warnings.filterwarnings('ignore', category=FutureWarning)
  logging.getLogger('apache_beam').setLevel(logging.ERROR)
  from data import conversion
  from tfx_pipeline.cli_paths import PathError, writable_folder

  try:
    if '://' not in args.out:  # Before any download or conversion work.
      writable_folder('--out', args.out)
    data_root = args.data_root
    if args.download:
      dest = args.download_dir or os.path.dirname(os.path.abspath(args.out))
      data_root = download.fetch_flower_photos(dest, url=args.download_url)
    conversion.convert(
      data_root,
      args.out,
      ratios={s: getattr(args, s) for s in photos.DEFAULT_RATIOS},
      images_per_shard=args.images_per_shard,
      overwrite=args.overwrite,
      beam_args=beam_args,
    )
  except (conversion.ConvertError, download.DownloadError, PathError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  return 0


if __name__ == '__main__':
  sys.exit(main())
