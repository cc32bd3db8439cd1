# Two entry points from a fresh clone; each installs what it needs into .venv first.
#   make demo   - run the benchmark demo end to end
#   make test   - lint and run the test suite (what CI runs)
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[jax,pytorch,dev,gcs]'
	touch $@

.PHONY: install demo test test-full-models
install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(VENV)/bin/algoperf demo

test: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -m "not full_models"

# The full-size workloads' model tests (conformance, parity): hours on 2 CPU cores.
test-full-models: $(VENV)/.installed
	$(PY) -m pytest -m full_models
