"""keras-tuner extensions for the Tuner's search: resumable state, progress and budget hooks."""
