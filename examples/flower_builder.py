"""A keras-tuner model builder: `run_local.py --hypermodel examples.flower_builder:model_builder`.

The classic keras-tuner flower recipe, written as keras-tuner's tutorials write
it: a pretrained image feature vector, one searched Dense layer and a softmax.
It declares its own hyperparameters (`hp.Int`, `hp.Choice`); a
`--search-space` file that declares the same names replaces their ranges.

The contract (README.md, "Your own model"): take `hp` (and, if you like,
`num_classes` and `image_size`, which the pipeline fills in), return a compiled
`keras.Model` from `[N, image_size, image_size, 3]` float images in [0, 1] to
`[N, num_classes]` probabilities, compiled with `metrics=['accuracy']`.
"""

import keras

from modules.backbones import backbone


def model_builder(hp, num_classes=5, image_size=224):
  units = hp.Int('units', min_value=64, max_value=256, step=64)
  activation = hp.Choice('dense_activation', ['relu', 'tanh', 'sigmoid'])
  learning_rate = hp.Choice('learning_rate', [1e-2, 1e-3, 1e-4], default=1e-3)

  model = keras.Sequential(
    [
      keras.Input(shape=(image_size, image_size, 3)),
      # EfficientNet-Lite0 with ImageNet weights: images in [0, 1] -> 1280 features, frozen.
      backbone.build_backbone('efficientnet-lite0', fine_tune=False),
      keras.layers.Dense(units, activation=activation),
      keras.layers.Dense(num_classes, activation='softmax'),
    ]
  )
  model.compile(
    optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
    loss='sparse_categorical_crossentropy',
    metrics=['accuracy'],
  )
  return model
