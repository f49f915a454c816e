"""`python -m tfx_pipeline.vertex.rehearsal.task -m MODULE ARGS...`: one rehearsed container task.

Runs the task's own command (`python -m MODULE ARGS...`, from the compiled
JSON) unchanged in this process, after one change: TFX's cloud executors start
their Vertex AI custom jobs as local processes (jobs.install).
"""

import runpy
import sys

from tfx_pipeline.vertex.rehearsal import jobs


def main(argv) -> None:
  if len(argv) < 2 or argv[0] != '-m':
    raise SystemExit('usage: python -m tfx_pipeline.vertex.rehearsal.task -m MODULE [ARGS...]')
  module = argv[1]
  sys.argv = [module, *argv[2:]]
  jobs.install()
  runpy.run_module(module, run_name='__main__', alter_sys=True)


if __name__ == '__main__':
  main(sys.argv[1:])
