# The two commands a newcomer needs: `make run` and `make test`. Both work on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck bench clean

$(BIN)/python:
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "textback needs Python 3.11 or newer"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

## run: install, migrate and serve on http://127.0.0.1:8080 (SQLite and in-process jobs)
run: $(STAMP)
	$(BIN)/textback db upgrade
	$(BIN)/textback serve --host 127.0.0.1 --port 8080

## test: install with test extras, lint, type-check, run the whole suite
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

## bench: the benchmarks in bench/ (they print their figures)
bench: $(STAMP)
	$(BIN)/python bench/webhook_latency.py
	$(BIN)/python bench/text_latency.py
	$(BIN)/python bench/hubspot_calls.py

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache .mypy_cache
