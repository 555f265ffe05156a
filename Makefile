# Two commands: `make run` (install + start on the example config) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[test]"
	touch $@

# The dashboard's htmx and its SSE extension, pinned in package.json / package-lock.json.
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

.PHONY: install run test bench
install: $(VENV)/.installed node_modules/.installed

run: install
	$(VENV)/bin/llmgate serve --config config.example.toml --host 127.0.0.1 --port 4000

test: install
	$(PY) -m pytest -q

bench: $(VENV)/.installed
	$(PY) benchmarks/run.py
