"""One worker process of a parallel search: `python -m tfx_pipeline.parallel.worker SPEC`.

`tfx_pipeline.parallel.pool` starts it with keras-tuner's distributed settings
in its environment. It does what TFX's own cloud Tuner workers do: TFX's
`tuner_executor.search` (tuner_fn, then `tuner.search(**fit_kwargs)`), whose
tuner asks the chief's oracle for each trial and reports back to it. SPEC is a
JSON file with the Tuner's input artifacts, execution properties and working dir.
"""

import json
import os
import sys
import threading
import time


def _exit_with_parent(poll_seconds: float = 1.0) -> None:
  """Ends this worker when the Tuner process that started it is gone.

  Otherwise a killed run leaves its workers training into the trial folder
  that the rerun resumes, and then waiting up to an hour on the dead chief.
  """
  parent = os.getppid()

  def watch():
    while os.getppid() == parent:
      time.sleep(poll_seconds)
    os._exit(1)

  threading.Thread(target=watch, daemon=True).start()


def main(argv) -> int:
  _exit_with_parent()
  with open(argv[0]) as f:
    spec = json.load(f)
  import tensorflow as tf

  from tfx_pipeline.parallel.pool import THREADS_ENV

  threads = int(os.environ.get(THREADS_ENV, '0'))
  if threads:
    # Before any op runs: TF's pools are fixed once created.
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
  from tfx.components.tuner import executor as tuner_executor
  from tfx.types import artifact_utils

  input_dict = artifact_utils.parse_artifact_dict(spec['input_dict'])
  # No summary: it would query the chief, which may be gone by then.
  tuner_executor.search(
    input_dict, spec['exec_properties'], spec['working_dir'], print_tuning_summary=False
  )
  return 0


if __name__ == '__main__':
  sys.exit(main(sys.argv[1:]))
