# Countersign. `make demo` runs the platform; `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-sqlite test-postgres lint bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): $(PY) requirements.txt requirements-dev.txt
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

## Run web + worker + scheduler with demo data (SQLite and an embedded Redis unless configured).
demo: $(STAMP)
	$(PY) -m workers.demo

## Install what the tests need and run the whole suite (SQLite, then PostgreSQL when reachable).
test: $(STAMP)
	bash .ci/test-suite

lint: $(STAMP)
	$(PY) -m ruff check app workers tests benchmarks config.py wsgi.py

bench: $(STAMP)
	$(PY) -m benchmarks

clean:
	rm -rf $(VENV) instance .pytest_cache
