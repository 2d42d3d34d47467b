# The front door: `make train` and `make test` set everything up on first use (a .venv with the package and its
# test dependencies) and re-use it afterwards. `make help` lists the targets.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CONFIG ?= configs/dense_highway.yaml
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help setup train test test-slow lint clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  make %-10s %s\n", $$1, $$2}'
	@echo "  variables: PYTHON=$(PYTHON) VENV=$(VENV) CONFIG=$(CONFIG) PYTEST_ARGS=$(PYTEST_ARGS)"

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.11 or run make PYTHON=python3 ..." >&2; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP) ## create .venv and install the package with its test dependencies (done once)

train: $(STAMP) ## the main job: python -m ser_lightning fit --config configs/dense_highway.yaml (CONFIG=...)
	$(BIN)/python -m ser_lightning fit --config $(CONFIG)

test: $(STAMP) ## ruff, then the test suite (slow tests deselected): python -m pytest
	$(BIN)/ruff check ser_lightning tests benchmarks
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-slow: $(STAMP) ## only the slow tests: python -m pytest -m slow
	$(BIN)/python -m pytest -m slow $(PYTEST_ARGS)

lint: $(STAMP) ## ruff check
	$(BIN)/ruff check ser_lightning tests benchmarks

clean: ## remove .venv and caches of the build tools (not the corpus cache)
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
