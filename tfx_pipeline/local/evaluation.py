"""What the Evaluator found: accuracy overall and per class, the gate's verdict, a confusion matrix.

And the served probabilities' reliability (tfx_pipeline/local/reliability.py).

Read from the Evaluator's TFMA output (`tfma.load_eval_result` and
`load_validation_result`): the overall slice, one slice per class
(`image/class/text`), the validation result that decided the blessing, and
the `MultiClassConfusionMatrixPlot` (tfx_pipeline/blessing.py `eval_config`).
With a baseline (the latest blessed model) TFMA keeps results for two models,
'candidate' and 'baseline'.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Any, List, Optional, Sequence, Tuple

from modules import features
from tfx_pipeline.blessing import ACCURACY_METRIC

CANDIDATE, BASELINE = 'candidate', 'baseline'
CONFUSION_PLOT = 'multiClassConfusionMatrixAtThresholds'
CONFUSION_MATRIX_FILE = 'confusion_matrix.png'


@dataclasses.dataclass
class Evaluation:
  uri: str
  accuracy: Optional[float]
  examples: int  # Of the evaluated split, overall.
  # (class name, accuracy, examples), by class name.
  per_class: List[Tuple[str, float, int]]
  baseline_accuracy: Optional[float]  # None on a first run: no blessed model yet.
  validation_ok: bool
  # The thresholds the candidate failed, each as 'value < bound' or 'value is below ...'.
  failures: List[str]
  # Examples by (true class id, predicted class id); None when TFMA gave no matrix.
  confusion: Optional[List[List[float]]]
  split: str = 'eval'  # The split scored: 'test' where the data has one.
  # The top class's probability against accuracy, before and after the temperature.
  reliability: Any = None  # reliability.Reliability; None from a model without both outputs.


def read(uri: str, max_accuracy_drop: float = 0.0, split: str = 'eval') -> Evaluation:
  """The Evaluator output at `uri`, which scored `split`."""
  import tensorflow_model_analysis as tfma  # Heavy; only the summary needs it.

  from tfx_pipeline.local import reliability

  two_models = os.path.exists(uri) and _has_baseline(uri)
  candidate = tfma.load_eval_result(uri, model_name=CANDIDATE if two_models else None)
  overall, examples, per_class = None, 0, []
  for slice_key, metrics in candidate.slicing_metrics:
    values = _metrics(metrics)
    if not slice_key:
      overall = values.get(ACCURACY_METRIC)
      examples = int(values.get('example_count') or 0)
    elif len(slice_key) == 1 and slice_key[0][0] == features.LABEL_TEXT_KEY:
      name = slice_key[0][1]
      name = name.decode() if isinstance(name, bytes) else str(name)
      count = values.get('example_count')
      per_class.append((name, values.get(ACCURACY_METRIC), int(count or 0)))
  baseline = None
  if two_models:
    for slice_key, metrics in tfma.load_eval_result(uri, model_name=BASELINE).slicing_metrics:
      if not slice_key:
        baseline = _metrics(metrics).get(ACCURACY_METRIC)
  validation = tfma.load_validation_result(uri)
  return Evaluation(
    uri=uri,
    accuracy=overall,
    examples=examples,
    per_class=sorted(per_class),
    baseline_accuracy=baseline,
    validation_ok=validation.validation_ok,
    failures=_failures(validation, f'{split} accuracy {overall:.3f}', baseline, max_accuracy_drop),
    confusion=_confusion(candidate.plots),
    split=split,
    reliability=reliability.from_plots(candidate.plots),
  )


def _failures(validation, accuracy: str, baseline: Optional[float], max_drop: float) -> List[str]:
  """The accuracy thresholds TFMA's `validation` result failed, each as one clause.

  `accuracy` names the candidate's figure (`test accuracy 0.200`).
  """
  failures = []
  for per_slice in validation.metric_validations_per_slice:
    for failure in per_slice.failures:
      if failure.metric_key.name != ACCURACY_METRIC:
        continue
      threshold = failure.metric_threshold
      if threshold.HasField('value_threshold'):
        bound = threshold.value_threshold.lower_bound.value
        failures.append(f'{accuracy} < {bound:.3f} (--accuracy-threshold)')
      elif threshold.HasField('change_threshold') and baseline is not None:
        drop = f' by more than {max_drop:g}' if max_drop else ''
        failures.append(
          f"{accuracy} is below the serving model's {baseline:.3f}{drop} (--max-accuracy-drop)"
        )
  return failures


def _has_baseline(uri: str) -> bool:
  import json

  try:
    with open(os.path.join(uri, 'eval_config.json')) as f:
      config = json.load(f)
  except (OSError, ValueError):
    return False
  specs = config.get('evalConfig', config).get('modelSpecs', [])
  return any(spec.get('isBaseline') for spec in specs)


def _metrics(metrics: dict) -> dict:
  """{'metric name': float} of one slice's default output."""
  return {
    name: value['doubleValue']
    for name, value in metrics.get('', {}).get('', {}).items()
    if isinstance(value, dict) and 'doubleValue' in value
  }


def _confusion(plots) -> Optional[List[List[float]]]:
  for slice_key, plot in plots or []:
    if slice_key:
      continue
    matrices = plot.get('', {}).get('', {}).get(CONFUSION_PLOT, {}).get('matrices', [])
    if not matrices:
      return None
    entries = matrices[0].get('entries', [])  # Threshold 0: the argmax class.
    size = 1 + max(
      max(e.get('actualClassId', 0), e.get('predictedClassId', 0)) for e in entries or [{}]
    )
    matrix = [[0.0] * size for _ in range(size)]
    for e in entries:
      predicted = e.get('predictedClassId', 0)
      if predicted >= 0:
        matrix[e.get('actualClassId', 0)][predicted] += e.get('numWeightedExamples', 0.0)
    return matrix
  return None


def wilson_interval(correct: int, n: int, z: float = 1.96) -> Tuple[float, float]:
  """The Wilson score interval of a proportion `correct`/`n` (95% for z = 1.96).

  Unlike the normal approximation it stays inside [0, 1] and is honest at
  0/n and n/n, which small evaluation splits often give.
  """
  if n <= 0:
    return 0.0, 1.0
  p = correct / n
  centre = (p + z * z / (2 * n)) / (1 + z * z / n)
  half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
  return max(0.0, centre - half), min(1.0, centre + half)


def counted(accuracy: float, n: int) -> str:
  """`0.780 (39/50, 95% CI 0.65-0.87)`: an accuracy with its count and Wilson interval."""
  if not n:
    return f'{accuracy:.3f}'
  correct = int(round(accuracy * n))
  low, high = wilson_interval(correct, n)
  return f'{accuracy:.3f} ({correct}/{n}, 95% CI {low:.2f}-{high:.2f})'


def summary_lines(evaluation: Evaluation) -> List[str]:
  """`test accuracy: 0.800 (40/50, 95% CI ...)` and a line per class; tools parse the first number.

  The interval says how far the figure could move on other photos like these:
  on 50 photos one photo is 2 points.
  """
  lines = []
  if evaluation.accuracy is not None:
    lines.append(
      f'{evaluation.split} accuracy: {counted(evaluation.accuracy, evaluation.examples)}'
    )
  for name, accuracy, count in evaluation.per_class:
    lines.append(f'  {name}: ' + ('-' if accuracy is None else counted(accuracy, count)))
  return lines


def why_not_pushed(evaluation: Optional[Evaluation]) -> str:
  """`model not pushed: test accuracy 0.200 < 0.500 (--accuracy-threshold); results in ...`."""
  if evaluation is None:
    return 'model not pushed: no evaluation in this run'
  reasons = '; '.join(evaluation.failures) or 'the Evaluator did not bless it'
  return f'model not pushed: {reasons}; TFMA results in {evaluation.uri}'


def write_confusion_matrix(
  evaluation: Evaluation, class_names: Sequence[str], path: str
) -> Optional[str]:
  """A PNG of the confusion matrix (rows: true class, columns: predicted); None without one."""
  if not evaluation.confusion:
    return None
  from tfx_pipeline.local import figures

  plt = figures.pyplot()

  matrix = evaluation.confusion
  size = len(matrix)
  names = [class_names[i] if i < len(class_names) else str(i) for i in range(size)]
  fig, ax = plt.subplots(figsize=(1.2 + 0.9 * size, 1.0 + 0.9 * size))
  ax.imshow(matrix, cmap='Blues')
  ax.set_xticks(range(size), names, rotation=45, ha='right')
  ax.set_yticks(range(size), names)
  ax.set_xlabel('predicted')
  ax.set_ylabel('true class')
  top = max(max(row) for row in matrix) or 1
  for i, row in enumerate(matrix):
    for j, value in enumerate(row):
      ax.text(
        j, i, f'{value:g}', ha='center', va='center', color='white' if value > top / 2 else 'black'
      )
  title = f'{evaluation.split} confusion matrix'
  if evaluation.accuracy is not None:
    title += f' (accuracy {evaluation.accuracy:.3f})'
  ax.set_title(title)
  return figures.save(fig, path)
