"""What the user code and the runners share at run time: content keys and whole-file writes."""
