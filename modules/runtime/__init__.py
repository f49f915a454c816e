"""What the user code needs whichever component runs it: the console, a stop request, gs://
paths, the device strategy, content keys and whole-file writes."""
