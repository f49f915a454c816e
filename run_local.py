"""Entry point: `python run_local.py --help`, or `python run_local.py predict PHOTO ...`."""

import sys

from tfx_pipeline.local.runner import main

if __name__ == '__main__':
  sys.exit(main())
