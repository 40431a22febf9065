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

# Two steps: the runtime pins hash-checked (--require-hashes, as the image installs them),
# then the dev tools (pinned, not hashed) with the runtime pins as constraints, which pip
# gets without their hashes (a hash anywhere would make it demand one for every tool).
RUNTIME_CONSTRAINTS := $(VENV)/runtime-constraints.txt

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --no-cache-dir --disable-pip-version-check -q --require-hashes -r requirements.txt
	sed -e 's/ *\\$$//' -e '/^ *--hash=/d' requirements.txt > $(RUNTIME_CONSTRAINTS)
	$(BIN)/pip install --no-cache-dir --disable-pip-version-check -q \
		-c $(RUNTIME_CONSTRAINTS) -r requirements-dev.txt
	rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP) ## create or update the virtual environment

# SQLite under this checkout (.data/, git-ignored), not the app's default in /tmp that every
# checkout on the machine would share; the demo routes on. Set either variable to override.
run: venv ## start the service on :8000, or on PORT (SQLite in .data/, demo routes on, no servers needed)
	mkdir -p .data
	DATABASE_URL="$${DATABASE_URL:-sqlite:///$(CURDIR)/.data/app.sqlite3}" \
		DEMO_ROUTES="$${DEMO_ROUTES:-true}" \
		$(BIN)/gunicorn -c python:service.gunicorn_conf service.main:app

test: lint ## lint, then every test but e2e (CI=true: a missing tool fails)
	$(BIN)/pytest -m "not e2e" --durations=20

test-fast: venv ## the quick loop: no containers, no drill
	$(BIN)/pytest -m "not container and not drill and not e2e"

lint: venv ## the pre-commit hooks on every tracked file: ruff, mypy, shellcheck, yamllint, helm lint
	$(BIN)/pre-commit run --all-files --show-diff-on-failure

fmt: venv ## format and autofix
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Pins that a resolution on a newer interpreter leaves out: redis needs async-timeout
# below Python 3.11.3 (Debian 12's python3 is 3.11.2, the CI stand-in base image).
MARKER_PINS := async-timeout==5.0.1 ; python_version < "3.11.3"
PIP_TOOLS := pip-tools==7.7.0

# pip-compile (pip-tools, in a throwaway venv) keeps the current pins unless pyproject moves
# them, and writes the sha256 of every file the index has for each pin (the wheels of every
# platform, and the sdist): the image's `pip install --require-hashes` accepts nothing else,
# on amd64 and arm64 alike. Index URLs and find-links of pip's own settings stay out.
requirements: ## re-pin requirements.txt (and the release job's tools), with hashes
	rm -rf .req-venv && $(PYTHON) -m venv .req-venv
	.req-venv/bin/pip install -q --no-cache-dir --disable-pip-version-check '$(PIP_TOOLS)'
	echo '$(firstword $(MARKER_PINS))' > .req-venv/markers.in
	cp requirements.txt .req-venv/requirements.txt
	.req-venv/bin/pip-compile -q --generate-hashes --strip-extras --no-header --no-annotate \
		--no-emit-index-url --no-emit-find-links --no-emit-trusted-host \
		-o .req-venv/requirements.txt pyproject.toml .req-venv/markers.in
	{ echo "# Pinned runtime dependencies with their hashes (the image installs exactly these). Regenerate: make requirements"; \
	  sed 's|^$(firstword $(MARKER_PINS)) \\$$|$(MARKER_PINS) \\|' .req-venv/requirements.txt; } > requirements.txt
	grep -qF '$(MARKER_PINS) \' requirements.txt
	CUSTOM_COMPILE_COMMAND='make requirements' .req-venv/bin/pip-compile -q --generate-hashes \
		--strip-extras --no-annotate --no-emit-index-url --no-emit-find-links --no-emit-trusted-host \
		-o tools/requirements-release.txt tools/requirements-release.in
	rm -rf .req-venv build *.egg-info

clean: ## remove the virtual environment and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# One fragment per concern (container, chart, drill, ...), each with its own targets.
include $(sort $(wildcard make/*.mk))
