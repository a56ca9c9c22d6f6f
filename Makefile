# Thin wrappers: each target sets up .venv on first use (or when pyproject.toml changes).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test unit lint bench client-types clean

# the server with its dev tools, then the Python client (its own distribution, which
# the `ponder` command's client commands use)
$(STAMP): pyproject.toml clients/python/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	$(BIN)/pip install -q -e clients/python
	touch $(STAMP)

install: $(STAMP)

## Run the embedded demo (no Postgres or Redis needed).
demo: $(STAMP)
	$(BIN)/ponder demo

## Lint, type-check and run every test (needs Postgres and Redis on 127.0.0.1).
test: $(STAMP) lint
	$(BIN)/pytest -q

## Only the fast unit tests (no services).
unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

## Style, types, and the architecture's layers (docs/architecture.md).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

## Benchmarks: print figures, never assert timings.
bench: $(STAMP)
	$(BIN)/python bench/scaling.py
	$(BIN)/python bench/verifiers.py
	$(BIN)/python bench/throughput.py
	$(BIN)/python bench/inflight.py --full
	$(BIN)/python bench/fairness.py
	$(BIN)/python bench/batch.py
	$(BIN)/python bench/recovery.py
	$(BIN)/python bench/quotas.py
	$(BIN)/python bench/revocation.py

## Regenerate the Python client's models from the API document (a test fails until you do).
client-types: $(STAMP)
	$(BIN)/python clients/python/scripts/generate_types.py --app

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
