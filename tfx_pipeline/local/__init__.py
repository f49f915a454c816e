"""Runs the pipeline on this machine (run_local.py): progress, results, tuning report, predict."""
