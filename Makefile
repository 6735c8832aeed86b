# The two commands a newcomer needs: `make run` and `make test`. Both work on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Everything (the service, the test suite, lint and type checks), and what running alone needs.
STAMP := $(VENV)/.installed
RUN_STAMP := $(VENV)/.installed-run

.PHONY: run test test-clocks lint typecheck bench bench-full clean browser

$(BIN)/python:
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "textback needs Python 3.11 or newer"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP) $(RUN_STAMP)

$(RUN_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $(RUN_STAMP)

## run: install what running needs (no test tools), migrate and serve on http://127.0.0.1:8080
## (SQLite; serve starts its own job process)
run: $(RUN_STAMP)
	$(BIN)/textback db upgrade
	$(BIN)/textback serve --host 127.0.0.1 --port 8080

## browser: Debian's Chromium for the browser tests (Playwright drives it; no browser download)
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian's chromium for the browser tests"; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1 || \
	    { apt-get update -q >/dev/null 2>&1 && \
	      DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1; } || \
	    echo "could not install chromium: the browser tests will be skipped"; \
	  else echo "chromium is not installed: the browser tests will be skipped"; fi; }

## test: install with the test and lint extras, lint, type-check, run the whole suite
test: $(STAMP) browser
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest -q

## test-clocks: the whole suite at 00:30, 05:59, 12:00 and 23:59 UTC, in two far-apart machine zones
## (not the fault suite: it runs the service in processes of its own, on the real clock)
CLOCKS := 00:30 05:59 12:00 23:59
ZONES := Pacific/Kiritimati America/Adak
test-clocks: $(STAMP) browser
	@mkdir -p var; for zone in $(ZONES); do for at in $(CLOCKS); do \
	  TZ=$$zone $(BIN)/pytest -q -p no:cacheprovider --deselect tests/faults --clock $$at >var/test-clock.log 2>&1; \
	  status=$$?; echo "clock $$at UTC, TZ=$$zone: $$(tail -n 1 var/test-clock.log)"; \
	  [ $$status = 0 ] || { grep -E '^(FAILED|ERROR)' var/test-clock.log; exit 1; }; \
	done; done

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

## bench: the benchmarks' quick forms, under two minutes (they print their figures)
bench: $(STAMP)
	$(BIN)/python bench/webhook_latency.py --setup sqlite --concurrency 20 --requests 400 --warmup 50
	$(BIN)/python bench/burst.py --setup sqlite --calls 60 --seconds 4

## bench-full: every benchmark in full, SQLite and PostgreSQL + Redis (about an hour and a half)
bench-full: $(STAMP)
	$(BIN)/python bench/webhook_latency.py --repeat 3
	$(BIN)/python bench/burst.py
	$(BIN)/python bench/text_latency.py
	$(BIN)/python bench/hubspot_calls.py
	$(BIN)/python bench/queue_pickup.py
	$(BIN)/python bench/policy_decision.py
	$(BIN)/python bench/text_back_cpu.py
	$(BIN)/python bench/outbound_request.py

## faults: the fault suite's long form (50 worker kill cycles, drops, outages; PostgreSQL and Redis)
.PHONY: faults
faults: $(STAMP)
	$(BIN)/python -m tests.faults --cycles 50

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache .mypy_cache
