"""Fetches and unpacks the public ``flower_photos.tgz`` for ``python -m data.convert --download``.

The archive holds ``flower_photos/{daisy,dandelion,roses,sunflowers,tulips}/*.jpg``
(3,670 photos, about 230 MB) and a ``LICENSE.txt``.
"""

import os
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request

FLOWER_PHOTOS_URL = (
  'https://storage.googleapis.com/download.tensorflow.org/example_images/flower_photos.tgz'
)
FOLDER = 'flower_photos'
_CHUNK = 1 << 20


class DownloadError(RuntimeError):
  """The archive could not be fetched or unpacked; the message says what to do instead."""


def fetch_flower_photos(dest_dir, url=FLOWER_PHOTOS_URL, timeout=60, echo=print):
  """Returns ``dest_dir/flower_photos``, downloading and unpacking it unless already there."""
  folder = os.path.join(dest_dir, FOLDER)
  if os.path.isdir(folder):
    echo(f'download: {folder} is already there, not downloading again')
    return folder
  os.makedirs(dest_dir, exist_ok=True)
  archive = os.path.join(
    dest_dir, os.path.basename(urllib.parse.urlparse(url).path) or FOLDER + '.tgz'
  )
  if not os.path.isfile(archive):
    _download(url, archive, timeout, echo)
  # Unpack beside the target and move into place, so an interrupted run never
  # leaves a half-filled flower_photos/ that the next run would take as done.
  with tempfile.TemporaryDirectory(dir=dest_dir, prefix='.unpack-') as tmp:
    try:
      with tarfile.open(archive) as tar:
        tar.extractall(tmp, filter='data')
    except (tarfile.TarError, OSError) as e:
      raise DownloadError(
        f'{archive} is not a readable .tgz ({e}): delete it and rerun to download it again.'
      ) from e
    if not os.path.isdir(os.path.join(tmp, FOLDER)):
      raise DownloadError(f'{archive} has no {FOLDER}/ folder: is {url} the flower photos archive?')
    os.replace(os.path.join(tmp, FOLDER), folder)
  echo(f'download: unpacked {archive} to {folder}')
  return folder


def _download(url, archive, timeout, echo):
  partial = archive + '.part'
  try:
    with urllib.request.urlopen(url, timeout=timeout) as response, open(partial, 'wb') as f:
      size = int(response.headers.get('Content-Length') or 0)
      echo(f'download: {url}' + (f' ({size / 1e6:.0f} MB)' if size else ''))
      done, shown = 0, 0
      while chunk := response.read(_CHUNK):
        f.write(chunk)
        done += len(chunk)
        if size and done * 10 // size > shown:
          shown = done * 10 // size
          echo(f'download: {done * 100 // size}%', flush=True)
  except (urllib.error.URLError, OSError) as e:
    if os.path.exists(partial):
      os.remove(partial)
    reason = getattr(e, 'reason', e)
    raise DownloadError(
      f'cannot download {url} ({reason}): offline? Fetch and unpack it on a machine '
      f'with network, then pass the folder: --data-root PATH/{FOLDER}'
    ) from e
  os.replace(partial, archive)
