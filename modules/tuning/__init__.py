"""keras-tuner extensions the Tuner's search runs with: resumable state, progress and budget hooks."""
