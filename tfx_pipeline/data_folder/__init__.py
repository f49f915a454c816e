"""The data folder a local run reads: its train/eval layout, and a check of every record."""
