"""TFLiteExport: the Trainer's SavedModel plus an int8 TFLite model, checked before the Pusher.

Between the Evaluator and the Pusher: it converts the serving model
(modules/model/tflite.py), calibrating int8 ranges on a sample of the train
split, then measures both models on the split the Evaluator scores (test where
the data has one): accuracy, size, and single-thread batch-1 latency. Its
output is the model the Pusher pushes: the SavedModel, `labels.txt`,
`tflite.json` (the figures), and `model.tflite` only when it is at most
`max_drop` less accurate than the SavedModel.
"""

import dataclasses
import json
import os
from typing import List, Optional, Tuple

from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types import standard_artifacts

REPORT_FILE = 'tflite.json'
# Images of the train split the int8 ranges are calibrated on (TFLite's guidance: ~100-500).
CALIBRATION_IMAGES = 100
# Decoding batch: the model inputs of this many photos are in memory at once.
_BATCH = 32


@dataclasses.dataclass(frozen=True)
class Measured:
  """One model's figures on the checked split."""

  accuracy: float
  megabytes: float
  ms_per_image: float


@dataclasses.dataclass(frozen=True)
class TFLiteCheck:
  """What TFLiteExport found: both models' figures and whether the TFLite model is pushed."""

  split: str
  examples: int
  saved_model: Measured
  tflite: Measured
  max_drop: float
  pushed: bool

  @property
  def drop(self) -> float:
    return self.saved_model.accuracy - self.tflite.accuracy

  def lines(self) -> List[str]:
    """The summary's two lines: the SavedModel, and the TFLite model beside it."""
    s, t = self.saved_model, self.tflite
    tflite = (
      f'tflite int8: {t.accuracy:.3f} ({t.accuracy - s.accuracy:+.3f}), {t.megabytes:.1f} MB, '
      f'{t.ms_per_image:.1f} ms/image on 1 thread'
    )
    if not self.pushed:
      tflite += (
        f'; not pushed: {self.drop:.3f} below the SavedModel, more than '
        f'--max-tflite-drop {self.max_drop:g}'
      )
    return [
      f'saved model: {self.split} accuracy {s.accuracy:.3f}, {s.megabytes:.1f} MB, '
      f'{s.ms_per_image:.1f} ms/image on 1 thread',
      tflite,
    ]


def read(model_uri: Optional[str]) -> Optional[TFLiteCheck]:
  """The check TFLiteExport wrote into its output model, or None (no such step or file)."""
  from tfx.utils import path_utils

  if not model_uri:
    return None
  path = os.path.join(path_utils.serving_model_dir(model_uri), REPORT_FILE)
  if not os.path.isfile(path):
    return None
  with open(path) as f:
    raw = json.load(f)
  return TFLiteCheck(
    **{
      **raw,
      'saved_model': Measured(**raw['saved_model']),
      'tflite': Measured(**raw['tflite']),
    }
  )


def _split_photos(examples, split: str, limit: Optional[int] = None, shuffle: bool = False):
  """Batches of (encoded photos, label ids) of `split` of the raw examples."""
  import tensorflow as tf
  from tfx.types import artifact_utils

  from modules import features

  uri = artifact_utils.get_split_uri([examples], split)
  files = tf.io.gfile.glob(os.path.join(uri, '*'))
  spec = {
    features.IMAGE_KEY: tf.io.FixedLenFeature([], tf.string),
    features.LABEL_KEY: tf.io.FixedLenFeature([], tf.int64),
  }
  data = tf.data.TFRecordDataset(files, compression_type='GZIP')
  if shuffle:
    data = data.shuffle(10 * CALIBRATION_IMAGES, seed=0)
  if limit:
    data = data.take(limit)
  data = data.batch(_BATCH).map(lambda x: tf.io.parse_example(x, spec))
  return ((b[features.IMAGE_KEY], b[features.LABEL_KEY].numpy()) for b in data)


def _folder_mb(path: str) -> float:
  import tensorflow as tf

  total = sum(
    tf.io.gfile.stat(os.path.join(folder, name)).length
    for folder, _, names in tf.io.gfile.walk(path)
    for name in names
  )
  return total / 1e6


def _warm_runner():
  """Where a warm-start server is named (tests, rehearsals), the latency process starts from it.

  Forked with TensorFlow imported but no op run, so it still sizes its thread
  pools to one thread; a plain run starts a new `python` (latency.measure's default).
  """
  from tfx_pipeline import warm_start

  if not warm_start.available():
    return None
  return lambda argv, env: warm_start.run(argv, env=env)


def _accuracies(loaded, classifier, batches) -> Tuple[float, float, int]:
  """(SavedModel accuracy, TFLite accuracy, photos) over the batches, on the same inputs."""
  import numpy as np

  right_saved = right_tflite = count = 0
  for encoded, labels in batches:
    images = loaded.model_input(encoded)
    right_saved += int(np.sum(np.argmax(loaded.image_probabilities(images), -1) == labels))
    right_tflite += int(np.sum(np.argmax(classifier.probabilities(images.numpy()), -1) == labels))
    count += len(labels)
  return right_saved / max(count, 1), right_tflite / max(count, 1), count


def export(
  saved_model_dir: str, examples, class_names, split: str, max_drop: float, output_dir: str
) -> TFLiteCheck:
  """Converts and checks the model in `saved_model_dir`; writes what is pushed to `output_dir`."""
  import tempfile

  import numpy as np
  import tensorflow as tf
  from absl import logging
  from tfx.utils import io_utils

  from modules.model import latency, tflite
  from modules.runtime import whole_file

  loaded = tf.saved_model.load(saved_model_dir)
  train = _split_photos(examples, 'train', CALIBRATION_IMAGES, shuffle=True)
  sample = np.concatenate([loaded.model_input(encoded).numpy() for encoded, _ in train])
  logging.info('Converting to int8 TFLite, ranges from %d train photos.', len(sample))
  model = tflite.convert(loaded, sample)
  saved_acc, tflite_acc, count = _accuracies(
    loaded, tflite.Classifier(model), _split_photos(examples, split)
  )
  with tempfile.TemporaryDirectory() as scratch:
    local = os.path.join(scratch, tflite.TFLITE_FILE)  # The latency process reads a local file.
    with open(local, 'wb') as f:
      f.write(model)
    ms = latency.measure(saved_model_dir, local, _warm_runner())
  check = TFLiteCheck(
    split=split,
    examples=count,
    saved_model=Measured(saved_acc, _folder_mb(saved_model_dir), ms['saved_model_ms']),
    tflite=Measured(tflite_acc, len(model) / 1e6, ms['tflite_ms']),
    max_drop=max_drop,
    # The tolerance keeps an equal accuracy from failing on float rounding.
    pushed=saved_acc - tflite_acc <= max_drop + 1e-9,
  )
  for line in check.lines():
    logging.info('%s', line)
  io_utils.copy_dir(saved_model_dir, output_dir)
  if check.pushed:
    whole_file.write(os.path.join(output_dir, tflite.TFLITE_FILE), model)
  whole_file.write(
    os.path.join(output_dir, tflite.LABELS_FILE), ''.join(f'{n}\n' for n in class_names)
  )
  whole_file.write(
    os.path.join(output_dir, REPORT_FILE), json.dumps(dataclasses.asdict(check), indent=2)
  )
  return check


@component
def TFLiteExport(
  model: InputArtifact[standard_artifacts.Model],
  examples: InputArtifact[standard_artifacts.Examples],
  transform_graph: InputArtifact[standard_artifacts.TransformGraph],
  exported_model: OutputArtifact[standard_artifacts.Model],
  evaluated_split: Parameter[str],
  max_drop: Parameter[float],
):
  """The SavedModel, plus model.tflite where its int8 accuracy is within `max_drop`."""
  import tensorflow_transform as tft
  from tfx.utils import path_utils

  from modules import labels

  export(
    path_utils.serving_model_path(model.uri),
    examples,
    labels.class_names(tft.TFTransformOutput(transform_graph.uri)),
    evaluated_split,
    max_drop,
    path_utils.serving_model_dir(exported_model.uri),
  )
