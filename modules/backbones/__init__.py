"""Image backbones: the pretrained built-in one, TF-Hub handles and SavedModels.

The Tuner and the Trainer build their models on one (model/).
"""
