# The checks a contributor runs before pushing, and CI runs on every push (included by the Makefile).
#
#   make lint            ruff check, ruff format --check and mypy (strict), configured in pyproject.toml;
#                        .pre-commit-config.yaml runs the same three before each commit
#   make format          apply ruff's formatting and its safe fixes (then look at the diff)

.PHONY: lint format

lint: install-all
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

format: install-all
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .
