# tasklab — every command a reader needs. Targets create and use .venv themselves,
# so a fresh clone needs nothing but Python 3.11+.
#
#   make demo            phase 5 end to end: Redis, the API, a 3-process pool, 500 tasks of random
#                        priorities, live per level and per process (PHASE=2..4: that phase's demo)
#   make test            the whole suite, in parallel (JOBS=2 processes; PostgreSQL too when
#                        TEST_DATABASE_URL is set); PHASE=N: only the tests that run against phase N
#   make test-tools      the tests of the tools around the phases: docs, bench, the CLIs
#   make test-slow       the fault runs sized beyond the point (200 tasks, 10 kills): CI runs them
#   make run PHASE=2     one phase's API (and WORKERS=1 workers) on PORT=8000; Ctrl-C stops all
#   make bench           throughput and latency figures, as ratios to a baseline; writes
#                        docs/data/bench.json and the plots docs/img/bench-*.png
#   make docs            regenerate the code listings and diffs quoted in docs/
#   make carry-forward   carry an edit of a phase's file into the later phases' copies, then check
#                        that each folder differs from the previous one only where its README says
#   make site / serve    the tutorial as a website in site/, or previewed with live reload
#   make lint            ruff check, ruff format --check and mypy, as CI runs them
#   make compose-test    phase 6 on a private Docker engine: build, run, verify, faults (root)
#   make compose-up      phase 6's stack for a user (docker compose; make compose-env first)
#   make k8s-env         the Secret's env file of phase 6's Kubernetes OVERLAY=dev (or production,
#                        with K8S_DATABASE_URL and K8S_REDIS_URL), from make compose-env's .env
#   make system-deps     the Debian packages some tests drive: prometheus (with promtool), chromium,
#                        iproute2 and nftables (the network partition of phases 3-5, as root)
#   make install-all     every extra at once (bench, docs, browser), as CI and make lint use them

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PHASE  ?= 2
WORKERS ?= 1
PORT   ?= 8000
PYTEST_ARGS ?=
#: Test processes (pytest-xdist): two keep a 2-core machine busy (three measured no faster, the
#: servers and workers the tests start need the cores too).
JOBS   ?= 2
#: make test PHASE=N: only that phase's tests (the folder's, the contract suite's and the suites
#: parametrized over phases, for N). PHASE only selects when given on the command line, since
#: make run's default (2) must not narrow the whole suite.
TEST_SELECTION := $(if $(filter command line,$(origin PHASE)),--phase $(PHASE))
#: Parallel, the longest modules first (tests/parallel.py, which also says why the grouping marks
#: do not group under pytest 9).
PYTEST := $(PY) -m pytest -n $(JOBS) --dist loadgroup --no-loadscope-reorder

#: Debian packages the tests drive for real (phase 4: a Prometheus server, a headless browser;
#: phases 3-5: network namespaces and nftables for the partition test, run as root).
SYSTEM_PACKAGES := prometheus chromium iproute2 nftables
SYSTEM_COMMANDS := prometheus promtool chromium ip nft

.PHONY: help install install-all system-deps demo test test-tools test-slow run bench docs carry-forward clean

help:
	@sed -n '1,/^$$/p' Makefile | sed 's/^# \{0,1\}//'

# The runtime and the test tools only; each extra comes with the target that needs it.
$(STAMP): pyproject.toml
	@$(PYTHON) tasklab_cli/preflight.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@# The bytecode of `python -OO`, which phase 5's pool processes run (5 MB less each): without
	@# it each of them compiles every module from source. The standard library's is written
	@# where it is writable (Python's own `make install` already wrote it in most installs).
	$(PY) -m compileall -q -o 2 $$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])') shared phase5_scaling phase6_docker >/dev/null
	@$(PY) -m compileall -q -o 2 $$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])') >/dev/null 2>&1 || true
	@touch $(STAMP)

install: $(STAMP)

#: One stamp per extra: `make bench` brings Celery and matplotlib, `make site` mkdocs, and the
#: browser tests Playwright (make install-all, as CI does; Chromium itself is Debian's).
EXTRA_STAMP = $(VENV)/.extra-$(1)
$(VENV)/.extra-%: $(STAMP)
	$(PY) -m pip install --quiet -e '.[dev,$*]'
	@touch $@

# Every extra in one pip run (one resolve, one editable build), then each extra's stamp.
$(VENV)/.extras-all: $(STAMP)
	$(PY) -m pip install --quiet -e '.[dev,bench,docs,browser]'
	@touch $(call EXTRA_STAMP,bench) $(call EXTRA_STAMP,docs) $(call EXTRA_STAMP,browser) $@

install-all: $(VENV)/.extras-all

demo: $(STAMP)
	@if [ "$(origin PHASE)" = "command line" ] && [ "$(PHASE)" != 5 ]; then \
	  $(PY) -m tasklab_cli.demo --phase $(PHASE); \
	else \
	  $(PY) -m phase5_scaling.demo --tasks 500 --workers 3; \
	fi

system-deps:
	@missing=""; for command in $(SYSTEM_COMMANDS); do command -v $$command >/dev/null || missing="$$missing $$command"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then sudo=""; elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo=sudo; \
	  else echo "missing:$$missing. Install them: sudo apt-get install $(SYSTEM_PACKAGES)"; exit 1; fi; \
	  echo "installing $(SYSTEM_PACKAGES) (missing:$$missing)"; \
	  $$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq $(SYSTEM_PACKAGES) >/dev/null; \
	fi

# Nothing but Python: a test that drives Prometheus, Chromium or an extra not installed is skipped
# with a hint (TASKLAB_REQUIRE_TOOLS=1 turns those skips into failures, as in CI).
test: $(STAMP)
	$(PYTEST) $(TEST_SELECTION) -m 'not slow' $(PYTEST_ARGS)

test-tools: $(STAMP)
	$(PYTEST) --phase tools -m 'not slow' $(PYTEST_ARGS)

test-slow: $(STAMP)
	$(PYTEST) $(TEST_SELECTION) -m slow $(PYTEST_ARGS)

run: $(STAMP)
	$(PY) -m tasklab_cli.run --phase $(PHASE) --workers $(WORKERS) --port $(PORT)

#: Where make bench keeps the figures of its last run; the chapters embed the plots drawn from them.
BENCH_JSON := docs/data/bench.json

bench: $(call EXTRA_STAMP,bench)
	$(PY) -m bench --json $(BENCH_JSON)
	$(PY) -m bench.plots $(BENCH_JSON) --out docs/img

docs: $(STAMP)
	$(PY) -m tasklab_cli.listings --write

# Copy forward: an edit in phase N's file reaches every later phase's copy (merged where a later
# phase changes that file), and the copies are checked against the READMEs' lists.
carry-forward: $(STAMP)
	$(PY) -m tasklab_cli.copyforward carry
	$(PY) -m tasklab_cli.copyforward check

# Phase 6 on Kubernetes: Kustomize reads files only inside an overlay's folder, so its secret
# generator's env file is written there (git ignores it), from Compose's .env and Prometheus's key.
# Production's store URLs come from the environment (K8S_DATABASE_URL, K8S_REDIS_URL), never argv.
OVERLAY ?= dev
.PHONY: k8s-env
k8s-env: $(STAMP)
	$(PY) -m phase6_docker.k8s.envfile --overlay $(OVERLAY)

clean:
	rm -rf $(VENV) .pytest_cache tasklab.db tasklab.db-shm tasklab.db-wal tasklab.db-writer-turn

# Targets of their own files: the tutorial site (mk/docs.mk) and phase 6's Docker stack (mk/phase6.mk).
-include mk/*.mk
