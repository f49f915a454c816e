"""Entry point: `python run_local.py --help`, or `python run_local.py predict PHOTO ...`."""

import os
import sys

from tfx_pipeline.local.cli import main
from tfx_pipeline.local.interrupt import EXIT_CODE

if __name__ == '__main__':
  code = main()
  if code == EXIT_CODE:
    # Stopped by Ctrl-C, with everything on disk: skip the seconds that TensorFlow's
    # and Beam's teardown takes at exit, so the prompt is back at once.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
  sys.exit(code)
