"""The search space: its file format and the one check that a space fits the model."""
