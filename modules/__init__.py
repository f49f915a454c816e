"""User code that TFX components load by dotted path (Transform, Tuner, Trainer)."""
