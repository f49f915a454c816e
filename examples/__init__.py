"""Examples to copy: a keras-tuner model builder for --hypermodel, and search-space files."""
