# Two commands on a fresh machine: `make train` and `make test`. Both build .venv from the lock file first.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: train test lint bench venv clean

$(STAMP): requirements.lock pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -r requirements.lock
	$(VENV)/bin/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

venv: $(STAMP)

# Default main job on CPU: QMIX on matrix game M0, 4 seeds in one compiled program (< 1 min).
train: $(STAMP)
	JAX_PLATFORMS=cpu $(VENV)/bin/python -m jaxfactor.train $(ARGS)

# Full test suite on CPU, two worker processes (test compilation is single-threaded).
test: $(STAMP)
	JAX_PLATFORMS=cpu $(VENV)/bin/python -m pytest -q -n 2 --dist loadgroup --durations=25 $(ARGS)

# Lint, format check and types of the package (CI runs this before the tests).
lint: $(STAMP)
	$(VENV)/bin/ruff check jaxfactor tests experiments
	$(VENV)/bin/ruff format --check jaxfactor tests experiments
	$(VENV)/bin/basedpyright --baselinemode=lock

bench: $(STAMP)
	$(VENV)/bin/python -m experiments.bench $(ARGS)

clean:
	rm -rf $(VENV) runs multirun outputs .pytest_cache
