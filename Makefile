# Set-up is a pinned virtualenv in .venv, rebuilt only when requirements.lock changes.
# `make run` and `make test` are the README's two commands.
PYTHON ?= python3.10
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
ARGS ?=

.PHONY: run test setup lock clean

setup: $(STAMP)

# --no-deps: the lock is complete (every transitive pin), and pip's resolver would
# reject the deliberate tensorflow-hub override (see requirements.in).
$(STAMP): requirements.lock
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -r requirements.lock
	@touch $(STAMP)

run: $(STAMP)
	$(PY) run_local.py $(ARGS)

# Lint and format checks first (settings in pyproject.toml), then the tests.
test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m pytest -q tests $(ARGS)

# Re-resolve the lock after editing requirements.in (needs uv: pip install uv).
lock:
	uv pip compile requirements.in --override overrides.txt --python-version 3.10 \
	  --python-platform x86_64-manylinux_2_36 -o requirements.lock

clean:
	rm -rf $(VENV) pipeline_output serving_model
