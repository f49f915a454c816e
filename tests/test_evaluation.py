"""The summary's accuracy figures: each with its count and a 95% Wilson interval."""

import pytest

from tfx_pipeline.local import evaluation


@pytest.mark.parametrize(
  'correct,n,low,high',
  [
    (39, 50, 0.6476, 0.8725),  # As statsmodels' proportion_confint(method='wilson') gives.
    (0, 10, 0.0, 0.2775),
    (10, 10, 0.7225, 1.0),
    (1, 2, 0.0945, 0.9055),
  ],
)
def test_wilson_interval_matches_published_values(correct, n, low, high):
  got = evaluation.wilson_interval(correct, n)
  assert got == pytest.approx((low, high), abs=1e-4)


def test_the_interval_narrows_as_photos_add_up():
  widths = [
    high - low for low, high in (evaluation.wilson_interval(4 * k, 5 * k) for k in (2, 10, 100))
  ]
  assert widths == sorted(widths, reverse=True) and widths[-1] < 0.08


def test_an_accuracy_is_shown_with_its_count_and_interval():
  assert evaluation.counted(0.78, 50) == '0.780 (39/50, 95% CI 0.65-0.87)'
  assert evaluation.counted(1.0, 0) == '1.000'  # No count from TFMA: the figure alone.
