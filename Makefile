# Shelf's developer commands. `make run` serves the API on http://127.0.0.1:8000; `make test` lints and
# runs the tests. Both create .venv when missing and use DATABASE_URL / REDIS_URL when set; when unset
# they run embedded PostgreSQL / Valkey in .data/ (SHELF_DATA_DIR) via scripts/dev_services.py.

PYTHON ?= $(shell command -v python3.11 || echo python3)
VENV ?= .venv
BIN := $(VENV)/bin
ARGS ?=

# The venv's tools come first for every recipe (flask, gunicorn, rq in scripts/run.sh).
export VIRTUAL_ENV := $(abspath $(VENV))
export PATH := $(abspath $(BIN)):$(PATH)

# Installs are skipped while the requirement files' checksums match the stamp names.
RUN_STAMP := $(VENV)/.installed-run-$(firstword $(shell cat requirements.txt requirements-local.txt | cksum))
DEV_STAMP := $(VENV)/.installed-dev-$(firstword $(shell cat requirements.txt requirements-local.txt requirements-dev.txt | cksum))

.DEFAULT_GOAL := help
.PHONY: help run test lint format services-status services-stop clean-data

help: ## List the commands
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip

$(RUN_STAMP): | $(BIN)/python
	$(BIN)/python -m pip install --disable-pip-version-check -r requirements-local.txt
	rm -f $(VENV)/.installed-run-*
	touch $@

$(DEV_STAMP): | $(BIN)/python
	$(BIN)/python -m pip install --disable-pip-version-check -r requirements-dev.txt
	rm -f $(VENV)/.installed-run-* $(VENV)/.installed-dev-*
	touch $@ $(RUN_STAMP)

run: $(RUN_STAMP) ## Migrate, seed and serve the API (gunicorn) with an rq worker; Ctrl-C stops all
	exec $(BIN)/python scripts/dev_services.py run --service --database shelf -- bash scripts/run.sh

test: $(DEV_STAMP) ## Lint (ruff) and run the tests; extra pytest arguments in ARGS="..."
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	exec $(BIN)/python scripts/dev_services.py run -- $(BIN)/python -m pytest $(ARGS)

lint: $(DEV_STAMP) ## ruff check and format check only
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(DEV_STAMP) ## Apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

services-status: $(RUN_STAMP) ## Show embedded PostgreSQL/Valkey running in the data folder
	$(BIN)/python scripts/dev_services.py status

services-stop: $(RUN_STAMP) ## Stop embedded servers left running (e.g. after a crash)
	$(BIN)/python scripts/dev_services.py stop

clean-data: services-stop ## Delete the embedded servers' data (the local database)
	rm -rf "$${SHELF_DATA_DIR:-.data}"
