# The image every Vertex AI step, training job and Dataflow worker of run_vertex.py runs in:
# TFX 1.16's image plus this project's modules and pinned packages.
#
#   docker build -t REGION-docker.pkg.dev/PROJECT/flower-tuner/flower-tuner:latest .
#
# EXTRA_PIP installs more packages on top, e.g. the TPU or CUDA build of TensorFlow 2.16
# for a Trainer on a TPU or GPUs (see README, "Running on Vertex AI").
FROM gcr.io/tfx-oss-public/tfx:1.16.0

# The versions the tests run with: the TFX image's tensorflow-hub (<0.16) fails to import
# on TensorFlow 2.16, and keras / keras-tuner must be the ones the modules are written for.
# --no-deps: the lock is complete and overrides TFX's tensorflow-hub pin (see Makefile).
COPY requirements.lock /tmp/requirements.lock
RUN python -m pip install --no-cache-dir --no-deps -r /tmp/requirements.lock

ARG EXTRA_PIP=""
RUN if [ -n "$EXTRA_PIP" ]; then python -m pip install --no-cache-dir $EXTRA_PIP; fi

# The user code is passed to TFX by dotted path (modules.tuner.tuner_fn, ...), so the
# `modules` package must be importable wherever a step runs.
WORKDIR /pipeline
COPY modules/ modules/
COPY tfx_pipeline/ tfx_pipeline/
ENV PYTHONPATH="/pipeline:${PYTHONPATH}"

# Keras 3, as the modules expect; some TFX images set TF_USE_LEGACY_KERAS=1.
ENV TF_USE_LEGACY_KERAS=0
