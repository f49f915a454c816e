"""Temperature scaling: one number that makes the served probabilities mean what they say.

`run_fn` (modules/trainer.py) fits the temperature T on the eval split after
training and bakes it into the serving model (modules/model/serving.py), which
serves softmax(log(p) / T): the same argmax as p, so accuracy is unchanged,
with confidences that match how often the model is right (Guo et al., "On
Calibration of Modern Neural Networks", 2017). T is the most probable one
under a weak prior around 1 (`PRIOR_SIGMA`), so a small eval split cannot
drive it to an extreme. The expected
calibration error (ECE, 15 equal-width bins of the top class's probability)
says how far they are from that, here on the eval split and, in the local
summary, on the test split from the Evaluator's calibration plots.
"""

from __future__ import annotations

import dataclasses
import math
from typing import List, Sequence, Tuple

import numpy as np

BINS = 15
# A search range wide enough for any trained softmax.
MIN_TEMPERATURE, MAX_TEMPERATURE = 0.05, 20.0
# The prior on log T: normal around T = 1 with this spread (95% of it on T in
# 0.14-7.4, every temperature published for trained networks). An eval split
# that the search picked its model by is often all or nearly all right, and the
# plain fit then sharpens without limit (T -> 0: 1.0 for every photo, wrong
# ones too); the prior weighs like a few photos, so hundreds of them decide.
PRIOR_SIGMA = 1.0
# log(0) guard: softmax outputs underflow to 0 for classes far behind.
TINY = 1e-30


def rescale(probabilities: np.ndarray, temperature: float) -> np.ndarray:
  """softmax(log(p) / T) over the last axis: what the serving model returns for `probabilities`."""
  logits = np.log(np.maximum(np.asarray(probabilities, np.float64), TINY)) / temperature
  logits -= logits.max(axis=-1, keepdims=True)
  scaled = np.exp(logits)
  return scaled / scaled.sum(axis=-1, keepdims=True)


def negative_log_likelihood(probabilities: np.ndarray, labels: np.ndarray) -> float:
  """The mean -log p(true class)."""
  picked = np.asarray(probabilities)[np.arange(len(labels)), np.asarray(labels, int)]
  return float(-np.mean(np.log(np.maximum(picked, TINY))))


def fit_temperature(probabilities: np.ndarray, labels: np.ndarray) -> float:
  """The most probable T given `labels`: their likelihood under rescale(p, T) times the prior."""
  from scipy import optimize

  if not len(labels):
    return 1.0

  def negative_log_posterior(log_t: float) -> float:
    nll = negative_log_likelihood(rescale(probabilities, math.exp(log_t)), labels)
    return nll * len(labels) + log_t * log_t / (2 * PRIOR_SIGMA * PRIOR_SIGMA)

  found = optimize.minimize_scalar(
    negative_log_posterior,
    bounds=(math.log(MIN_TEMPERATURE), math.log(MAX_TEMPERATURE)),
    method='bounded',
  )
  return float(math.exp(found.x))


@dataclasses.dataclass(frozen=True)
class Bin:
  """One bin of a reliability diagram: its examples, their summed confidence and correct count."""

  lower: float
  upper: float
  count: float
  confidence: float  # The sum of the top class's probability.
  correct: float  # How many of them the top class got right.


def reliability(probabilities: np.ndarray, labels: np.ndarray, bins: int = BINS) -> List[Bin]:
  """The equal-width bins of the top class's probability, as TFMA's CalibrationPlot keeps them."""
  probabilities = np.asarray(probabilities)
  confidence = probabilities.max(axis=-1)
  correct = probabilities.argmax(axis=-1) == np.asarray(labels, int)
  index = np.minimum((confidence * bins).astype(int), bins - 1)
  return [
    Bin(
      lower=b / bins,
      upper=(b + 1) / bins,
      count=float(np.sum(index == b)),
      confidence=float(confidence[index == b].sum()),
      correct=float(correct[index == b].sum()),
    )
    for b in range(bins)
  ]


def expected_calibration_error(bins: Sequence[Bin]) -> float:
  """sum over bins of |accuracy - mean confidence|, weighted by the bin's share of examples."""
  total = sum(b.count for b in bins)
  if not total:
    return 0.0
  return sum(abs(b.correct - b.confidence) for b in bins) / total


def ece(probabilities: np.ndarray, labels: np.ndarray) -> float:
  return expected_calibration_error(reliability(probabilities, labels))


def predictions(model, batches) -> Tuple[np.ndarray, np.ndarray]:
  """(probabilities [N, K], labels [N]) of `model` over (inputs, label) `batches`."""
  probabilities, labels = [], []
  for inputs, label in batches:
    probabilities.append(np.asarray(model(inputs, training=False)))
    labels.append(np.asarray(label).reshape(-1))
  if not probabilities:
    return np.zeros((0, 0)), np.zeros((0,), int)
  return np.concatenate(probabilities), np.concatenate(labels).astype(int)


# Written beside the serving model's saved_model.pb, so a pushed model says how it was calibrated.
CALIBRATION_FILE = 'calibration.json'


@dataclasses.dataclass(frozen=True)
class Fitted:
  """A temperature and what it did on the split it was fitted on."""

  temperature: float
  split: str
  examples: int
  ece_before: float
  ece_after: float
  nll_before: float
  nll_after: float

  def describe(self) -> str:
    """`temperature 1.42 on 50 eval examples: ECE 0.081 -> 0.043, NLL 0.61 -> 0.52`."""
    return (
      f'temperature {self.temperature:.3f} on {self.examples} {self.split} examples: '
      f'ECE {self.ece_before:.3f} -> {self.ece_after:.3f}, '
      f'NLL {self.nll_before:.3f} -> {self.nll_after:.3f}'
    )


def fit(model, batches, split: str) -> Fitted:
  """Fits the temperature on `model`'s predictions over `batches` of `split`."""
  probabilities, labels = predictions(model, batches)
  if not len(labels):
    return Fitted(1.0, split, 0, 0.0, 0.0, 0.0, 0.0)
  temperature = fit_temperature(probabilities, labels)
  calibrated = rescale(probabilities, temperature)
  return Fitted(
    temperature=temperature,
    split=split,
    examples=int(len(labels)),
    ece_before=ece(probabilities, labels),
    ece_after=ece(calibrated, labels),
    nll_before=negative_log_likelihood(probabilities, labels),
    nll_after=negative_log_likelihood(calibrated, labels),
  )
