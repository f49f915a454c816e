"""The flower tuner TFX pipeline: definition, configuration and runners."""
