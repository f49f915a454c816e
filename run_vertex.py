"""Entry point: `python run_vertex.py --help` (compile for, and submit to, Vertex AI Pipelines)."""

import sys

from tfx_pipeline.vertex.runner import main

if __name__ == '__main__':
  sys.exit(main())
