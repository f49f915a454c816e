"""What a local run produced, read back from ML Metadata, and the summary lines that say it.

`runner.run` returns a `RunSummary`: the run's component states, the
hyperparameters the Trainer used, the evaluation, the TFLite check, the pushed model, and the
files the summary wrote (the confusion matrix, the reliability diagram; the
search's tuning report).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Dict, List, Optional

from tfx_pipeline.config import PipelineConfig
from tfx_pipeline.local import console_log


@dataclasses.dataclass(frozen=True)
class RunSummary:
  """One run of the pipeline, as ML Metadata records it."""

  run_id: Optional[str]
  states: Dict[str, str]  # Component id -> 'executed', 'cached', ...
  best_hyperparameters: Optional[Dict[str, Any]] = None  # Without keras-tuner's own keys.
  best_hyperparameters_uri: Optional[str] = None
  evaluation: Any = None  # evaluation.Evaluation, None when no Evaluator ran.
  transform_graph_uri: Optional[str] = None
  pushed_model: Optional[str] = None
  seconds: Optional[float] = None  # The components' run time.
  confusion_matrix: Optional[str] = None  # The PNG written beside the tuning report.
  best_trial_score: Optional[float] = None  # The search's best validation score, if one ran.
  calibration: Any = None  # modules.model.calibration.Fitted: the Trainer's temperature.
  reliability_diagram: Optional[str] = None  # The PNG written beside the confusion matrix.
  tflite: Any = None  # tfx_pipeline.tflite_export.TFLiteCheck; None without that step.
  # With several --objectives: which trial of the front the Trainer trained, and why.
  chosen: Optional[str] = None

  @property
  def tuned(self) -> bool:
    """Whether a search chose the hyperparameters (on the split the Evaluator also reads)."""
    return 'Tuner' in self.states

  @property
  def accuracy(self) -> Optional[float]:
    return self.evaluation.accuracy if self.evaluation else None


def hyperparameters(uri: str) -> Dict[str, Any]:
  """The values in a best_hyperparameters artifact at `uri`, without keras-tuner's own keys."""
  import keras_tuner

  from modules.search import search_space
  from tfx_pipeline.local import results

  hp = keras_tuner.HyperParameters.from_config(results.best_hyperparameters(uri))
  return search_space.public_values(hp.values)


def trial_score(tuner_results_uri: str, values: Dict[str, Any]) -> Optional[float]:
  """The score of the trial with `values` in a Tuner's tuner_results artifact; None if absent.

  TFX's Tuner lists the search's trials there, each with its score and values:
  where no search folder is at hand (a Vertex run's summary), the figure the
  Trainer's trial was chosen by.
  """
  import json

  import tensorflow as tf

  path = os.path.join(tuner_results_uri, 'tuner_results.json')
  if not tf.io.gfile.exists(path):
    return None
  with tf.io.gfile.GFile(path) as f:
    rows = json.load(f)
  scores = [row['score'] for row in rows if all(row.get(k) == v for k, v in values.items())]
  return scores[0] if scores else None


def read(config: PipelineConfig, run_id: Optional[str] = None) -> RunSummary:
  """What run `run_id` (default: the newest) of `config`'s pipeline produced."""
  from tfx_pipeline import tflite_export
  from tfx_pipeline.local import evaluation, reliability, results

  if run_id:
    run = results.run_results(config.metadata_path, config.pipeline_name, run_id)
  else:
    run = results.latest_run(config.metadata_path, config.pipeline_name)
  hp_uri = results.output_uri(run, 'Tuner', 'best_hyperparameters') or results.output_uri(
    run, 'hparams_importer', 'result'
  )
  evaluation_uri = results.output_uri(run, 'Evaluator', 'evaluation')
  split = results.evaluated_split(run)
  return RunSummary(
    run_id=run_id,
    states={node: r.state for node, r in run.items()},
    best_hyperparameters=hyperparameters(hp_uri) if hp_uri else None,
    best_hyperparameters_uri=hp_uri,
    evaluation=(
      evaluation.read(evaluation_uri, config.max_accuracy_drop, split) if evaluation_uri else None
    ),
    transform_graph_uri=results.output_uri(run, 'Transform', 'transform_graph'),
    pushed_model=results.pushed_destination(run),
    calibration=reliability.fitted(results.output_uri(run, 'Trainer', 'model')),
    tflite=tflite_export.read(results.output_uri(run, 'TFLiteExport', 'exported_model')),
  )


def finish(config: PipelineConfig, summary: RunSummary, echo) -> RunSummary:
  """Writes the tuning report and the evaluation's PNGs, prints the summary; returns it."""
  from tfx_pipeline.local import report as tuning_report

  report = report_tuning(config) if config.tune else None
  summary = dataclasses.replace(
    summary,
    confusion_matrix=_confusion_matrix(config, summary, report),
    reliability_diagram=_reliability_diagram(config, summary, report),
    best_trial_score=tuning_report.best_score(report) if report else None,
    chosen=(report.get('front') or {}).get('line') if report else None,
  )
  for line in lines(summary):
    echo(line)
  if report:
    tuning_report.print_report(report, echo)
  return summary


def lines(summary: RunSummary) -> List[str]:
  """The console's summary of a finished run."""
  from tfx_pipeline.local import evaluation, reliability

  cached = sorted(n for n, s in summary.states.items() if s == 'cached')
  out = [
    f'finished in {summary.seconds:.0f}s'
    + (f' ({len(cached)} of {len(summary.states)} components from cache)' if cached else '')
  ]
  if summary.best_hyperparameters is not None:
    out.append(f'best hyperparameters: {summary.best_hyperparameters}')
    out.append(f'  ({summary.best_hyperparameters_uri}/best_hyperparameters.txt)')
    if summary.chosen and summary.tuned:
      out.append(summary.chosen)
  else:
    out.append('hyperparameters: search space defaults (no tuning)')
  if summary.evaluation:
    out += evaluation.summary_lines(summary.evaluation)
    if summary.tuned:
      out.append(_optimism(summary.evaluation.split, summary.best_trial_score))
    if summary.evaluation.reliability:
      out.append(
        reliability.summary_line(
          summary.evaluation.split, summary.evaluation.reliability, summary.calibration
        )
      )
  if summary.tflite:
    out += summary.tflite.lines()
  out.append(
    f'pushed model: {summary.pushed_model}'
    if summary.pushed_model
    else evaluation.why_not_pushed(summary.evaluation)
  )
  if summary.confusion_matrix:
    out.append(f'confusion matrix: {summary.confusion_matrix}')
  if summary.reliability_diagram:
    out.append(f'reliability diagram: {summary.reliability_diagram}')
  return out


def _optimism(split: str, best_trial_score: Optional[float]) -> str:
  """The best trial's eval score beside a test figure, or that the figure is the search's own.

  The search picks its best trial by the eval split, so the best trial's score
  there flatters it: the gap to the test accuracy is that optimism. Without a
  test split the Evaluator's figure is itself that flattering one.
  """
  best = '' if best_trial_score is None else f'{best_trial_score:.3f}'
  if split != 'eval':
    return (
      f"  best trial's eval accuracy: {best or '-'} "
      f'(the split the search picked it by; the gap to {split} is its optimism)'
    )
  best = f' (best trial: {best})' if best else ''
  return (
    f'  measured on the eval split the search picked its best trial by{best}: '
    'optimistic for new photos (add test shards for an unbiased figure)'
  )


def report_tuning(config: PipelineConfig) -> Optional[dict]:
  """Writes the search's report into the search's own folder; returns it (None: no search).

  Not into the Tuner's best_hyperparameters artifact: TFX's Trainer reads that
  folder's only file, and fails on a second one.
  """
  from modules.tuning import state as tuning_state
  from tfx_pipeline.local import report as tuning_report

  search = tuning_state.latest_search(
    tuning_state.base_dir(config.pipeline_root, config.pipeline_name)
  )
  return tuning_report.write(search) if search else None


def _beside_report(config: PipelineConfig, summary: RunSummary, report, name: str) -> str:
  """`name` in the search's report folder, or run-stamped in the run's log folder without one."""
  if report:
    return os.path.join(report['dir'], name)
  return os.path.join(config.pipeline_root, console_log.LOGS_DIR, f'{summary.run_id}-{name}')


def _confusion_matrix(config: PipelineConfig, summary: RunSummary, report) -> Optional[str]:
  """Writes the evaluated split's confusion matrix beside the tuning report; its path."""
  from tfx_pipeline.local import evaluation

  if not summary.evaluation or not summary.evaluation.confusion:
    return None
  return evaluation.write_confusion_matrix(
    summary.evaluation,
    _class_names(summary.transform_graph_uri),
    _beside_report(config, summary, report, evaluation.CONFUSION_MATRIX_FILE),
  )


def _reliability_diagram(config: PipelineConfig, summary: RunSummary, report) -> Optional[str]:
  """Writes the reliability diagram beside the confusion matrix; its path."""
  from tfx_pipeline.local import reliability

  if not summary.evaluation or not summary.evaluation.reliability:
    return None
  return reliability.write_diagram(
    summary.evaluation.reliability,
    summary.evaluation.split,
    _beside_report(config, summary, report, reliability.RELIABILITY_FILE),
  )


def _class_names(transform_graph_uri: Optional[str]) -> List[str]:
  if not transform_graph_uri:
    return []
  import tensorflow_transform as tft

  from modules import labels

  return labels.class_names(tft.TFTransformOutput(transform_graph_uri))
