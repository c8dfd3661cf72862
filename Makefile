# tasklab — every command a reader needs. Targets create and use .venv themselves,
# so a fresh clone needs nothing but Python 3.11+.
#
#   make demo            the phase 2 system end to end: Redis, API, worker, a batch of tasks
#   make test            the whole test suite (PostgreSQL too when TEST_DATABASE_URL is set)
#   make run PHASE=2     one phase's API (and WORKERS=1 workers) on PORT=8000; Ctrl-C stops all
#   make bench           throughput and latency figures, as ratios to a baseline
#   make docs            regenerate the code listings and diffs quoted in docs/

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PHASE  ?= 2
WORKERS ?= 1
PORT   ?= 8000
PYTEST_ARGS ?=

.PHONY: help install demo test run bench docs clean

help:
	@sed -n '1,/^$$/p' Makefile | sed 's/^# \{0,1\}//'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m tasklab_cli.demo

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

run: $(STAMP)
	$(PY) -m tasklab_cli.run --phase $(PHASE) --workers $(WORKERS) --port $(PORT)

bench: $(STAMP)
	$(PY) -m bench

docs: $(STAMP)
	$(PY) -m tasklab_cli.listings --write

clean:
	rm -rf $(VENV) .pytest_cache tasklab.db tasklab.db-shm tasklab.db-wal
