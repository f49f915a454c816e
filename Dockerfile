# The image every Vertex AI step, training job and Dataflow worker of run_vertex.py runs in:
# TFX 1.16's image plus this project's modules and pinned packages.
#
#   docker build -t REGION-docker.pkg.dev/PROJECT/flower-tuner/flower-tuner:latest .
#
# For a Trainer on a TPU or on GPUs, add --build-arg TF_VARIANT=tpu (TensorFlow's TPU build
# and libtpu) or TF_VARIANT=gpu (the CUDA libraries); the default is CPU only.
FROM gcr.io/tfx-oss-public/tfx:1.16.0

# The versions the tests run with: the TFX image's tensorflow-hub (<0.16) fails to import
# on TensorFlow 2.16, and keras / keras-tuner must be the ones the modules are written for.
# --no-deps: the lock is complete and overrides TFX's tensorflow-hub pin (see Makefile).
COPY requirements.lock /tmp/requirements.lock
RUN python -m pip install --no-cache-dir --no-deps -r /tmp/requirements.lock

ARG TF_VARIANT=cpu
RUN TF=$(sed -n 's/^tensorflow==//p' /tmp/requirements.lock) && case "$TF_VARIANT" in \
      cpu) ;; \
      gpu) python -m pip install --no-cache-dir "tensorflow[and-cuda]==$TF" ;; \
      tpu) python -m pip uninstall -y tensorflow && \
           python -m pip install --no-cache-dir "tensorflow-tpu==$TF" \
             -f https://storage.googleapis.com/libtpu-tf-releases/index.html ;; \
      *) echo "TF_VARIANT must be cpu, gpu or tpu" >&2; exit 1 ;; \
    esac

# The user code is passed to TFX by dotted path (modules.tuner.tuner_fn, ...), so the
# `modules` package must be importable wherever a step runs; examples/ holds the example
# --hypermodel builder. A builder of your own must be in a folder copied here too
# (run_vertex.py refuses one that is not).
WORKDIR /pipeline
COPY modules/ modules/
COPY tfx_pipeline/ tfx_pipeline/
COPY examples/ examples/
ENV PYTHONPATH="/pipeline:${PYTHONPATH}"

# The default efficientnet-lite0 backbone, converted from its weights package once here
# rather than at the start of every step and job (modules/backbones/backbone.py reads this folder).
ENV FLOWER_TUNER_CACHE=/pipeline/cache
RUN python -c "from modules import backbone; print(backbone.resolve('efficientnet-lite0'))"

# Keras 3, as the modules expect; some TFX images set TF_USE_LEGACY_KERAS=1.
ENV TF_USE_LEGACY_KERAS=0
