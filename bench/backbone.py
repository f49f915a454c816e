"""Saves the benchmark's backbone: ResNet50V2 (random weights, no download) as a local SavedModel.

The pipeline loads it through the same path a TF-Hub handle takes (`--backbone PATH`).
"""

import argparse
import os


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__)
  p.add_argument('--out', required=True)
  p.add_argument('--image-size', type=int, default=224)
  args = p.parse_args(argv)
  import keras

  network = keras.applications.ResNet50V2(
    weights=None,
    include_top=False,
    pooling='avg',
    input_shape=(args.image_size, args.image_size, 3),
  )
  network.export(args.out, verbose=False)


if __name__ == '__main__':
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
  main()
