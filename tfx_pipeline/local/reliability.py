"""How far the served probabilities can be trusted: ECE and a reliability diagram.

The Evaluator keeps TFMA CalibrationPlots of the top class's probability for
the candidate, after its temperature and before it (tfx_pipeline/blessing.py
`reliability_specs`); the Trainer writes the temperature it fitted beside the
model (modules/model/calibration.py). The local summary reads both, prints
one line and draws the diagram beside the confusion matrix.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import List, Optional

from modules.model import calibration
from tfx_pipeline.blessing import UNCALIBRATED_OUTPUT

RELIABILITY_FILE = 'reliability.png'
_TOP_1 = 'topK:1'


@dataclasses.dataclass(frozen=True)
class Reliability:
  before: List[calibration.Bin]  # The model's own softmax.
  after: List[calibration.Bin]  # The served, temperature-scaled probabilities.

  @property
  def ece_before(self) -> float:
    return calibration.expected_calibration_error(self.before)

  @property
  def ece_after(self) -> float:
    return calibration.expected_calibration_error(self.after)


def from_plots(plots) -> Optional[Reliability]:
  """The overall slice's reliability from `tfma.load_eval_result(...).plots`; None without it."""
  for slice_key, plot in plots or []:
    if slice_key:
      continue
    before = _bins(plot.get(UNCALIBRATED_OUTPUT, {}).get(_TOP_1))
    after = _bins(plot.get('', {}).get(_TOP_1))
    return Reliability(before, after) if before and after else None
  return None


def _bins(plot: Optional[dict]) -> List[calibration.Bin]:
  """TFMA's histogram buckets as calibration.BINS bins of [0, 1].

  Top-1 binarization sets every other class's probability to -inf: those fall
  below 0 and are dropped. A probability of exactly 1.0 lands in TFMA's
  overflow bucket, [1, inf): it belongs to the last bin.
  """
  if not plot:
    return []
  count = [0.0] * calibration.BINS
  confidence = [0.0] * calibration.BINS
  correct = [0.0] * calibration.BINS
  for bucket in plot.get('calibrationHistogramBuckets', {}).get('buckets', []):
    lower = float(bucket.get('lowerThresholdInclusive', 0.0))
    if math.isinf(lower) and lower < 0 or not bucket.get('numWeightedExamples'):
      continue
    index = min(int(lower * calibration.BINS + 1e-6), calibration.BINS - 1)
    count[index] += float(bucket['numWeightedExamples'])
    confidence[index] += float(bucket.get('totalWeightedRefinedPrediction', 0.0))
    correct[index] += float(bucket.get('totalWeightedLabel', 0.0))
  return [
    calibration.Bin(i / calibration.BINS, (i + 1) / calibration.BINS, n, c, k)
    for i, (n, c, k) in enumerate(zip(count, confidence, correct))
  ]


def fitted(model_uri: Optional[str]) -> Optional[calibration.Fitted]:
  """The temperature the Trainer fitted for the model artifact at `model_uri`; None without one."""
  if not model_uri:
    return None
  from tfx.utils import path_utils

  path = os.path.join(path_utils.serving_model_dir(model_uri), calibration.CALIBRATION_FILE)
  try:
    with open(path) as f:
      return calibration.Fitted(**json.load(f))
  except (OSError, ValueError, TypeError):
    return None


def summary_line(split: str, reliability: Reliability, fit: Optional[calibration.Fitted]) -> str:
  """`calibration: temperature 1.42 (fitted on eval); test ECE 0.081 -> 0.043 (15 bins)`.

  Without a test split the ECE is measured on the photos the temperature was
  fitted on, and the line says so: the after figure flatters it.
  """
  how = f'temperature {fit.temperature:.2f} (fitted on {fit.split})' if fit else 'temperature -'
  same = ', the photos it was fitted on' if fit and fit.split == split else ''
  return (
    f'calibration: {how}; {split} ECE {reliability.ece_before:.3f} -> '
    f'{reliability.ece_after:.3f} ({calibration.BINS} bins{same})'
  )


def write_diagram(reliability: Reliability, split: str, path: str) -> str:
  """A PNG: accuracy against confidence per bin, before and after the temperature; its path."""
  from tfx_pipeline.local import figures

  plt = figures.pyplot()

  fig, ax = plt.subplots(figsize=(5.0, 5.0))
  ax.plot([0, 1], [0, 1], color='grey', linestyle='--', label='perfectly calibrated')
  for bins, name, ece, marker in (
    (reliability.before, 'model softmax', reliability.ece_before, 'o'),
    (reliability.after, 'served (temperature)', reliability.ece_after, 's'),
  ):
    used = [b for b in bins if b.count]
    ax.plot(
      [b.confidence / b.count for b in used],
      [b.correct / b.count for b in used],
      marker=marker,
      label=f'{name}: ECE {ece:.3f}',
    )
  # A little past [0, 1]: points at 100% accuracy or confidence stay in sight.
  ax.set_xlim(-0.02, 1.03)
  ax.set_ylim(-0.02, 1.03)
  ax.set_xlabel("top class's probability (mean per bin)")
  ax.set_ylabel('accuracy in the bin')
  examples = int(sum(b.count for b in reliability.after))
  ax.set_title(f'{split} reliability ({examples} examples, {calibration.BINS} bins)')
  ax.legend(loc='lower right')
  return figures.save(fig, path)
