"""Temperature scaling and the expected calibration error, on numbers whose answer is known."""

import math

import numpy as np
import pytest

from modules.model import calibration
from tfx_pipeline.local import reliability


def _softmax(logits):
  e = np.exp(logits - logits.max(axis=-1, keepdims=True))
  return e / e.sum(axis=-1, keepdims=True)


def _drawn(temperature, n=4000, classes=5, seed=0):
  """Labels drawn from softmax(logits): the model says softmax(logits * temperature)."""
  rng = np.random.default_rng(seed)
  logits = rng.normal(0.0, 2.0, (n, classes))
  truth = _softmax(logits)
  labels = np.array([rng.choice(classes, p=p) for p in truth])
  return _softmax(logits * temperature), labels


@pytest.mark.parametrize('overconfident_by', [2.0, 0.5])
def test_the_fitted_temperature_undoes_a_known_miscalibration(overconfident_by):
  probabilities, labels = _drawn(overconfident_by)
  temperature = calibration.fit_temperature(probabilities, labels)
  assert temperature == pytest.approx(overconfident_by, rel=0.1)
  calibrated = calibration.rescale(probabilities, temperature)
  assert calibration.ece(calibrated, labels) < 0.03 < calibration.ece(probabilities, labels)
  assert calibration.negative_log_likelihood(
    calibrated, labels
  ) < calibration.negative_log_likelihood(probabilities, labels)
  # The same class wins: accuracy cannot change.
  assert (calibrated.argmax(-1) == probabilities.argmax(-1)).all()


def test_rescale_is_softmax_of_logits_over_the_temperature():
  logits = np.array([[2.0, 0.5, -1.0], [0.0, 0.0, 3.0]])
  np.testing.assert_allclose(calibration.rescale(_softmax(logits), 2.5), _softmax(logits / 2.5))
  np.testing.assert_allclose(calibration.rescale(_softmax(logits), 1.0), _softmax(logits))


def test_ece_by_hand():
  # Two photos at 0.9 (one right) and one at 0.4 (wrong): bins 13 and 6 of 15.
  probabilities = np.array([[0.9, 0.05, 0.05], [0.9, 0.05, 0.05], [0.3, 0.3, 0.4]])
  labels = np.array([0, 1, 0])
  bins = calibration.reliability(probabilities, labels)
  assert [(round(b.lower * 15), b.count, b.correct) for b in bins if b.count] == [
    (6, 1.0, 0.0),
    (13, 2.0, 1.0),
  ]
  # |1 - 1.8| for the 0.9 bin, |0 - 0.4| for the 0.4 bin, over 3 photos.
  assert calibration.ece(probabilities, labels) == pytest.approx((0.8 + 0.4) / 3)


def test_a_few_photos_all_right_cannot_drive_the_temperature_to_an_extreme():
  """Without the prior the fit would sharpen to its bound: every photo right favours T -> 0."""
  probabilities = np.array([[0.6, 0.4], [0.3, 0.7]])
  fitted = calibration.fit(lambda x, training: x, [(probabilities, np.array([0, 1]))], 'eval')
  assert 0.3 < fitted.temperature < 1.0  # Sharper, within reason.
  assert fitted.examples == 2 and fitted.ece_after < fitted.ece_before
  assert fitted.nll_after < fitted.nll_before
  # Hundreds of such photos do move it near the bound: the data decides.
  many = calibration.fit_temperature(np.tile(probabilities, (300, 1)), np.tile([0, 1], 300))
  assert many < 0.1


def _bucket(lower, upper, n, prediction, label):
  bucket = {'numWeightedExamples': n, 'totalWeightedRefinedPrediction': prediction}
  bucket['totalWeightedLabel'] = label
  if lower:
    bucket['lowerThresholdInclusive'] = lower  # TFMA's JSON leaves out 0.
  if upper is not None:
    bucket['upperThresholdExclusive'] = upper
  return bucket


def test_tfma_buckets_read_as_bins():
  """Top-1 binarization's -inf rows are dropped; TFMA's overflow bucket (p = 1) is the last bin."""
  buckets = [
    _bucket('-Infinity', 0.0, 8.0, '-Infinity', 0.0),
    _bucket(0.0, 1 / 15, 0.0, 0.0, 0.0),
    _bucket(0.4, 0.4666, 1.0, 0.45, 0.0),
    _bucket(14 / 15, 1.0, 2.0, 1.9, 2.0),
    _bucket(1.0, 'Infinity', 1.0, 1.0, 1.0),
  ]
  plot = {'calibrationHistogramBuckets': {'buckets': buckets}}
  other = {'calibrationHistogramBuckets': {'buckets': buckets[:3]}}
  found = reliability.from_plots(
    [((), {'': {'topK:1': plot}, 'uncalibrated_probabilities': {'topK:1': other}})]
  )
  assert [(b.lower, b.count, b.confidence, b.correct) for b in found.after if b.count] == [
    (6 / 15, 1.0, 0.45, 0.0),
    (14 / 15, 3.0, 2.9, 3.0),
  ]
  assert found.ece_after == pytest.approx((0.45 + 0.1) / 4)
  assert found.ece_before == pytest.approx(0.45)
  assert not math.isnan(found.ece_before)
  # A model without the uncalibrated output (exported before calibration) has no reliability.
  assert reliability.from_plots([((), {'': {'topK:1': plot}})]) is None
