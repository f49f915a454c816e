"""`run_vertex.py --rehearse`: compile as for --submit, then run the compiled pipeline here.

The console is run_local.py's: a line per task, per job replica and per
finished trial, then the summary (best hyperparameters, eval accuracy, the
baseline, the pushed model); everything else goes to
`<rehearsal root>/logs/<run id>.log`. Ctrl-C stops every process the
rehearsal started. A failing task ends it with one line naming the task and
the cause, and the log's path.
"""

from __future__ import annotations

import glob
import os
import sys
import time
import traceback
from typing import Callable, Optional, Tuple

from tfx_pipeline import warm_start
from tfx_pipeline.config import PROJECT_ROOT, PipelineConfig
from tfx_pipeline.local import console_log, summary
from tfx_pipeline.local import interrupt as interrupt_module
from tfx_pipeline.options import UsageError
from tfx_pipeline.vertex import data_splits
from tfx_pipeline.vertex.rehearsal import execute, image, pipeline_spec
from tfx_pipeline.vertex.settings import VertexSettings

# The task whose output is the Evaluator's baseline: TFX's latest-blessed-model resolver.
BASELINE_TASK = 'latest_blessed_model_resolver-model-resolver'


class RehearsalError(ValueError):
  """Settings a rehearsal cannot run with; one line."""


def check_inputs(config: PipelineConfig, rehearsal_root: str, layout) -> None:
  """The data folder (and --hparams-from) must be there, gs:// ones at their mapped folders.

  With the splits `layout` declares: train, validation and test shards where it expects them.
  """
  local = pipeline_spec.local_path(config.data_root, rehearsal_root)
  if not glob.glob(os.path.join(local, '*.tfrecord*')):
    raise RehearsalError(
      f'--data-root {_where(config.data_root, local)} holds no TFRecord files: copy a sample of '
      'the data there, or pass a local folder as --data-root.'
    )
  from tfx_pipeline.data_folder import layout as data_layout

  by_hash = 'pass --split-by-hash to split its TFRecord files 80/10/10 into train/eval/test.'
  fixes = {'train': by_hash, 'validation': by_hash}
  if layout.has_test:
    fixes[data_layout.TEST] = (
      'add them, or pass --no-test-split to evaluate on the validation split.'
    )
  published = layout.output_config is None  # A hash split makes its own splits.
  for split, fix in fixes.items() if published else ():
    shards = data_layout.PUBLISHED_PATTERN.format(split=split)
    if not glob.glob(os.path.join(local, shards)):
      where = _where(config.data_root, local)
      raise RehearsalError(f'--data-root {where} has no {split} shards ({shards}): {fix}')
  if config.hparams_from:
    local = pipeline_spec.local_path(config.hparams_from, rehearsal_root)
    if not os.path.exists(local):
      raise RehearsalError(
        f'--hparams-from {_where(config.hparams_from, local)} does not exist: copy the '
        'best_hyperparameters folder there.'
      )


def _where(uri: str, local: str) -> str:
  return local if local == uri else f'{uri} is {local} in a rehearsal, which'


def rehearse(
  config: PipelineConfig,
  vertex: VertexSettings,
  compiled: str,
  rehearsal_root: str,
  echo: Callable[[str], None],
  split: str = 'test',
) -> Tuple[summary.RunSummary, Optional[str]]:
  """Runs the compiled pipeline at `compiled`: (its summary, the Evaluator's baseline model).

  `split`: the one its Evaluator scores.
  """
  from tfx_pipeline.local import beam

  run_id = f'{config.pipeline_name}-{time.strftime("%Y%m%d%H%M%S")}'
  image_dir = image.stage(PROJECT_ROOT, rehearsal_root)
  echo(f"image stand-in: {image_dir} (what ./Dockerfile copies) and this environment's packages")
  data = pipeline_spec.local_path(config.data_root, rehearsal_root)
  mode = beam.workers_mode('auto', beam.data_bytes(data))
  rehearsal = execute.Rehearsal(
    root=rehearsal_root,
    image_dir=image_dir,
    beam_args=list(beam.prepare(mode, image_dir)),
    one_worker_args=list(beam.ONE_WORKER),
    one_worker_steps=beam.ONE_WORKER_STEPS,
    echo=echo,
    run_id=run_id,
    project=vertex.project,
  )
  job = pipeline_spec.load(compiled, rehearsal_root)
  processes = []
  start = time.monotonic()
  # A server named in the environment already (the test suite's) serves as well: a
  # child takes its working directory, environment and imports from each request.
  server = None
  if not warm_start.available():
    server = warm_start.Server(image_dir, execute.task_env(image_dir))
    os.environ[warm_start.ADDRESS_ENV] = server.address
  try:
    outputs, states = execute.run(job, rehearsal, processes)
  finally:
    execute.stop_all(processes)  # Each task's group: its jobs' replicas too.
    if server is not None:
      server.stop()
      os.environ.pop(warm_start.ADDRESS_ENV, None)
  return _summary(outputs, states, run_id, time.monotonic() - start, config, split), _first_uri(
    outputs, BASELINE_TASK, 'model'
  )


def _summary(
  outputs: dict, states: dict, run_id: str, seconds: float, config, split: str
) -> summary.RunSummary:
  """What the rehearsal produced, as a local run's summary says it; its Evaluator scored `split`."""
  from tfx_pipeline import tflite_export
  from tfx_pipeline.local import evaluation, reliability

  hp_uri = _first_uri(outputs, 'Tuner', 'best_hyperparameters') or _first_uri(
    outputs, 'hparams_importer', 'result'
  )
  best = summary.hyperparameters(hp_uri) if hp_uri else None
  searched = _first_uri(outputs, 'Tuner', 'tuner_results')
  evaluated = _first_uri(outputs, 'Evaluator', 'evaluation')
  return summary.RunSummary(
    run_id=run_id,
    states=states,
    best_hyperparameters=best,
    best_hyperparameters_uri=hp_uri,
    evaluation=(evaluation.read(evaluated, config.max_accuracy_drop, split) if evaluated else None),
    transform_graph_uri=_first_uri(outputs, 'Transform', 'transform_graph'),
    pushed_model=execute.pushed_model(outputs),
    seconds=seconds,
    best_trial_score=summary.trial_score(searched, best) if searched and best else None,
    calibration=reliability.fitted(_first_uri(outputs, 'Trainer', 'model')),
    tflite=tflite_export.read(_first_uri(outputs, 'TFLiteExport', 'exported_model')),
  )


def _first_uri(outputs: dict, task: str, key: str) -> Optional[str]:
  found = outputs.get(task, {}).get(key) or []
  return found[0]['uri'] if found else None


def main(config: PipelineConfig, vertex: VertexSettings, args, compile_fn) -> int:
  """The --rehearse command: console and log, compile, run, summary. Returns the exit code.

  `compile_fn(layout)` checks the search and compiles as --submit does: (JSON path,
  machine lines).
  """
  root = os.path.abspath(args.rehearsal_root)
  session = console_log.Session(args.verbose).start()
  run_log = console_log.log_path(root, time.strftime('%Y%m%d-%H%M%S'))
  try:
    layout = data_splits.layout_from_args(config, args)
    check_inputs(config, root, layout)
    session.open_log(run_log)
    if session.log_path:
      session.line(f'log: {session.log_path}')
    session.line(f'gs://BUCKET/... is {pipeline_spec.gcs_root(root)}/BUCKET/... in this rehearsal')
    compiled, machines = compile_fn(layout)
    session.line(f'compiled: {compiled}')
    for line in machines:
      session.line(line)
    split = layout.evaluated_split
    result, baseline = rehearse(config, vertex, compiled, root, session.line, split)
    for line in summary.lines(result):
      session.line(line)
    session.line(f'baseline: {baseline or "none (no blessed model yet)"}')
    if result.pushed_model:
      session.line(
        f'try it: python run_local.py predict --model-dir {result.pushed_model} PHOTO.jpg'
      )
    return 0
  except KeyboardInterrupt:
    session.line('interrupted: every process of the rehearsal is stopped')
    return interrupt_module.EXIT_CODE
  except (RehearsalError, UsageError) as e:  # Bad settings, found before any task ran.
    session.close()
    print(console_log.shown(f'error: {e}'), file=sys.stderr)
    return 2
  except execute.TaskFailed as e:
    console_log.end_with_error(session, str(e))
    return 1
  except Exception as e:  # The rehearsal's own failure: still one line, and the log.
    traceback.print_exc()
    console_log.end_with_error(session, f'{type(e).__name__}: {e}')
    return 1
  finally:
    session.close()
