# Each target makes .venv itself, so the commands work on a fresh machine.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# A CPU build of torch; a plain "torch" pulls a CUDA build of several GB.
TORCH := torch==2.13.0
DEMO_ARGS ?=

export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: demo test bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.test-deps: pyproject.toml | $(PY)
	$(PIP) install --quiet -e ".[test,backends,examples]" "$(TORCH)"
	touch $@

$(VENV)/.demo-deps: pyproject.toml | $(PY)
	$(PIP) install --quiet -e ".[examples]"
	touch $@

# pytest-xdist: one worker per core (the slow tests are subprocesses and
# trainings that spread well over two); tests sharing one expensive run are
# an xdist_group, which loadgroup keeps on one worker.
PYTEST_WORKERS ?= auto

test: $(VENV)/.test-deps
	$(PY) -m pytest -q -n $(PYTEST_WORKERS) --dist loadgroup

demo: $(VENV)/.demo-deps
	$(PY) examples/fashion_mnist_comparison.py $(DEMO_ARGS)

bench: $(VENV)/.test-deps
	for script in benchmarks/*.py; do $(PY) $$script || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
