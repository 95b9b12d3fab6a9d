# The two commands: `make run` serves the API, `make test` runs lint and the whole suite.
# Both create .venv on first use and reuse it afterwards (re-installing only when pyproject.toml changes).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint format pytest test-tools schema bench-ingest bench-search bench-tracing bench-api-cpu clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed-run

run: $(VENV)/.installed-run
	mkdir -p data
	$(BIN)/vectorql serve

test: $(VENV)/.installed-dev lint test-tools pytest

lint: $(VENV)/.installed-dev
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

pytest: $(VENV)/.installed-dev
	$(BIN)/pytest

# Some tests drive Chromium, docker-compose and promtool: Debian's packages, installed when missing
# (as root).
test-tools:
	bash scripts/ensure_test_tools.sh

format: $(VENV)/.installed-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

schema: $(VENV)/.installed-run
	$(BIN)/vectorql schema > schema.graphql

bench-ingest: $(VENV)/.installed-dev
	$(BIN)/python -m tests.bench.ingest $(ARGS)

bench-search: $(VENV)/.installed-dev
	$(BIN)/python -m tests.bench.search $(ARGS)

bench-tracing: $(VENV)/.installed-dev
	$(BIN)/python -m tests.bench.tracing $(ARGS)

bench-api-cpu: $(VENV)/.installed-dev
	$(BIN)/python -m tests.bench.api_cpu $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
