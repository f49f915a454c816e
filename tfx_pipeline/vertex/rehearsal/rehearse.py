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
from typing import Callable, Optional

from tfx_pipeline.config import PROJECT_ROOT, PipelineConfig
from tfx_pipeline.local import console
from tfx_pipeline.local import interrupt as interrupt_module
from tfx_pipeline.options import UsageError
from tfx_pipeline.vertex.rehearsal import execute, image, pipeline_spec
from tfx_pipeline.vertex.settings import VertexSettings


class RehearsalError(ValueError):
  """Settings a rehearsal cannot run with; one line."""


def check_inputs(config: PipelineConfig, rehearsal_root: str) -> None:
  """The data folder (and --hparams-from) must be there, gs:// ones at their mapped folders."""
  local = pipeline_spec.local_path(config.data_root, rehearsal_root)
  if not glob.glob(os.path.join(local, '*.tfrecord*')):
    raise RehearsalError(
      f'--data-root {_where(config.data_root, local)} holds no TFRecord files: copy a sample of '
      'the data there, or pass a local folder as --data-root.'
    )
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
) -> dict:
  """Runs the compiled pipeline at `compiled`; returns its summary. Raises TaskFailed."""
  from tfx_pipeline.local import beam

  run_id = f'{config.pipeline_name}-{time.strftime("%Y%m%d%H%M%S")}'
  image_dir = image.stage(PROJECT_ROOT, rehearsal_root)
  echo(f"image stand-in: {image_dir} (what ./Dockerfile copies) and this environment's packages")
  mode = beam.resolve('auto', 0)
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
  try:
    outputs = execute.run(job, rehearsal, processes)
  finally:
    execute.stop_all(processes)
  return {'run_id': run_id, 'outputs': outputs, 'seconds': time.monotonic() - start}


def summary_lines(summary: dict, config: PipelineConfig) -> list:
  """The summary a person reads: hyperparameters, accuracy, baseline, the pushed model."""
  from modules.search import search_space
  from tfx_pipeline.local import evaluation, results

  outputs = summary['outputs']
  lines = [f'finished in {summary["seconds"]:.0f}s']
  hp = _first_uri(outputs, 'Tuner', 'best_hyperparameters')
  if hp:
    import keras_tuner

    values = keras_tuner.HyperParameters.from_config(results.best_hyperparameters(hp)).values
    lines.append(f'best hyperparameters: {search_space.public_values(values)}')
  baseline = _first_uri(outputs, 'latest_blessed_model_resolver-model-resolver', 'model')
  lines.append(f'baseline: {baseline}' if baseline else 'baseline: none (no blessed model yet)')
  evaluated = _first_uri(outputs, 'Evaluator', 'evaluation')
  result = evaluation.read(evaluated, config.max_accuracy_drop) if evaluated else None
  if result:
    lines += evaluation.summary_lines(result)
  pushed = execute.pushed_model(outputs)
  if pushed:
    lines.append(f'pushed model: {pushed}')
    lines.append(f'try it: python run_local.py predict --model-dir {pushed} PHOTO.jpg')
  else:
    lines.append(evaluation.why_not_pushed(result))
  return lines


def _first_uri(outputs: dict, task: str, key: str) -> Optional[str]:
  found = outputs.get(task, {}).get(key) or []
  return found[0]['uri'] if found else None


def main(config: PipelineConfig, vertex: VertexSettings, args, compile_fn) -> int:
  """The --rehearse command: console and log, compile, run, summary. Returns the exit code.

  `compile_fn()` checks the search and compiles as --submit does: (JSON path, machine lines).
  """
  root = os.path.abspath(args.rehearsal_root)
  session = console.Session(args.verbose).start()
  run_log = console.log_path(root, time.strftime('%Y%m%d-%H%M%S'))
  try:
    check_inputs(config, root)
    session.open_log(run_log)
    if session.log_path:
      session.line(f'log: {session.log_path}')
    session.line(f'gs://BUCKET/... is {pipeline_spec.gcs_root(root)}/BUCKET/... in this rehearsal')
    compiled, machines = compile_fn()
    session.line(f'compiled: {compiled}')
    for line in machines:
      session.line(line)
    summary = rehearse(config, vertex, compiled, root, session.line)
    for line in summary_lines(summary, config):
      session.line(line)
    return 0
  except KeyboardInterrupt:
    session.line('interrupted: every process of the rehearsal is stopped')
    return interrupt_module.EXIT_CODE
  except (RehearsalError, UsageError) as e:  # Bad settings, found before any task ran.
    session.close()
    print(console.shown(f'error: {e}'), file=sys.stderr)
    return 2
  except execute.TaskFailed as e:
    console.end_with_error(session, str(e))
    return 1
  except Exception as e:  # The rehearsal's own failure: still one line, and the log.
    traceback.print_exc()
    console.end_with_error(session, f'{type(e).__name__}: {e}')
    return 1
  finally:
    session.close()
