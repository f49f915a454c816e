# Set-up is a pinned virtualenv in .venv, rebuilt only when requirements.lock changes.
# `make run` and `make test` are the README's two commands.
PYTHON ?= python3.10
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
ARGS ?=
UV_VERSION := 0.13.9

.PHONY: run test setup lock clean

setup: $(STAMP)

# uv installs the lock's wheels in parallel: under a minute where pip takes over 2.
# --compile-bytecode, as pip does: where PYTHONDONTWRITEBYTECODE is set (CI machines),
# nothing else would, and every process would compile TensorFlow's sources again.
# --no-deps: the lock is complete (every transitive pin), and a resolver would
# reject the deliberate tensorflow-hub override (see requirements.in).
$(STAMP): requirements.lock
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(VENV)/bin/uv pip install --quiet --compile-bytecode --python $(PY) --no-deps -r requirements.lock
	@touch $(STAMP)

run: $(STAMP)
	$(PY) run_local.py $(ARGS)

# Lint and format checks first (settings in pyproject.toml), then the tests on
# every core: most of a pipeline test's time is one busy Python thread (Beam's
# DirectRunner, TFX's launcher, tf.function tracing), so two workers on two cores
# nearly halve the wall time. Each test module stays on one worker, and modules are
# handed out in the order tests/conftest.py sorts them (the longest first).
test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m pytest -q -n auto --dist loadfile --no-loadscope-reorder tests $(ARGS)

# Re-resolve the lock after editing requirements.in (with the uv that setup installs).
lock: $(STAMP)
	$(VENV)/bin/uv pip compile requirements.in --override overrides.txt --python-version 3.10 \
	  --python-platform x86_64-manylinux_2_36 -o requirements.lock

clean:
	rm -rf $(VENV) pipeline_output serving_model
