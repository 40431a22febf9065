# Usage: make help   (every target creates and reuses .venv by itself)
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | cksum | cut -d' ' -f1)

.PHONY: help venv run test test-fast lint fmt requirements clean

help: ## list the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | sort | \
		awk 'BEGIN {FS = ":.*## "}; {printf "  %-18s %s\n", $$1, $$2}'

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --no-cache-dir --disable-pip-version-check -q -r requirements-dev.txt
	rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP) ## create or update the virtual environment

run: venv ## start the service on :8000, or on PORT (embedded SQLite, no servers needed)
	$(BIN)/gunicorn -c python:service.gunicorn_conf service.main:app

test: lint ## lint, then every test but e2e (CI=true: a missing tool fails)
	$(BIN)/pytest -m "not e2e"

test-fast: venv ## the quick loop: no containers, no drill
	$(BIN)/pytest -m "not container and not drill and not e2e"

lint: venv ## the pre-commit hooks on every tracked file: ruff, mypy, shellcheck, yamllint, helm lint
	$(BIN)/pre-commit run --all-files --show-diff-on-failure

fmt: venv ## format and autofix
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Pins that `pip freeze` on a newer interpreter leaves out: redis needs async-timeout
# below Python 3.11.3 (Debian 12's python3 is 3.11.2, the CI stand-in base image).
MARKER_PINS := async-timeout==5.0.1 ; python_version < "3.11.3"

requirements: ## re-pin requirements.txt from pyproject's dependencies
	rm -rf .req-venv && $(PYTHON) -m venv .req-venv
	.req-venv/bin/pip install -q --no-cache-dir .
	{ echo "# Pinned runtime dependencies (the image installs exactly these). Regenerate: make requirements"; \
	  { .req-venv/bin/pip freeze --exclude fastapi-app; echo '$(MARKER_PINS)'; } | LC_ALL=C sort -f -s -t= -k1,1; } > requirements.txt
	rm -rf .req-venv build *.egg-info

clean: ## remove the virtual environment and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# One fragment per concern (container, chart, drill, ...), each with its own targets.
include $(sort $(wildcard make/*.mk))
