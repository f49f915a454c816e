"""Feature and label keys shared by Transform, the model, and serving.

Raw keys follow the published flower TFRecords; transformed keys are what the
model sees.
"""

# Raw features (tf.train.Example), as in the published flower TFRecords.
IMAGE_KEY = 'image/encoded'
LABEL_KEY = 'image/class/label'
LABEL_TEXT_KEY = 'image/class/text'
FILENAME_KEY = 'image/filename'

# Transformed features.
IMAGE = 'image'
LABEL = 'label'

# Transform vocabulary of "<label id>:<class name>" pairs seen in the data.
LABEL_NAMES_VOCAB = 'label_names'
