"""Runs the pipeline on Vertex AI Pipelines (run_vertex.py): its settings, compile and submit."""
