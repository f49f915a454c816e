"""`run_vertex.py --rehearse`: the compiled Vertex AI pipeline, run here as Vertex runs it."""
