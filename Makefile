# Two entry points: `make demo` runs the main job, `make test` the suite.
# Both create the virtual environment in .venv and install what they need.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
DEMO_OUT ?= demo-out

.PHONY: demo test system-deps install install-test lint bench clean

system-deps:
	PYTHON=$(PYTHON) bash scripts/system-deps.sh

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade "pip>=24"

$(VENV)/.installed: $(VENV)/bin/python pyproject.toml setup.py constraints.txt ledger/_rowcheck.c
	$(PIP) install --quiet -c constraints.txt -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PIP) install --quiet -c constraints.txt -e ".[test]"
	touch $@

install: system-deps $(VENV)/.installed

install-test: system-deps $(VENV)/.installed-test

demo: install
	DEMO_OUT=$(DEMO_OUT) PATH="$(CURDIR)/$(VENV)/bin:$$PATH" bash scripts/demo.sh

test: install-test
	$(PY) -m pytest -n 2 -q

lint: install-test
	$(VENV)/bin/ruff check cli.py ledger policies reports tests bench

bench: install-test
	$(PY) bench/ledger_bench.py
	$(PY) bench/proof_bench.py

clean:
	rm -rf $(DEMO_OUT) .pytest_cache
