"""Cloud Storage paths for code that can only write local files.

Keras 3 writes `.weights.h5` checkpoints with h5py, which opens local paths
only, so a `gs://` folder fails there. Vertex AI custom jobs mount Cloud
Storage at /gcs/<bucket> (Cloud Storage FUSE); this maps `gs://` URIs onto it.
"""

import os

GCS_MOUNT = '/gcs'


def local_path(uri: str) -> str:
  """`uri` as a path h5py can write: gs://b/x -> /gcs/b/x where mounted, else unchanged."""
  if uri.startswith('gs://') and os.path.isdir(GCS_MOUNT):
    return os.path.join(GCS_MOUNT, uri[len('gs://') :])
  return uri
