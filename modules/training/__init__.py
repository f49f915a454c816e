"""What fit reads in the Tuner and the Trainer: the transformed inputs, augmentation, and
cached backbone features."""
