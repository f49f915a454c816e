"""Parallel trials on one machine: the Tuner component, the keras-tuner chief, its workers."""
