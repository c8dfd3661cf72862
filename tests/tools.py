"""The tools a test needs beyond Python and the project's own dependencies: present, skipped, or failed.

Phases 1 to 3 need nothing but Python, so a learner's ``make test`` must not stop at a missing
browser or Prometheus. A test that drives one of them asks here first: where the tool is missing
it is skipped with one line saying what to install. CI sets ``TASKLAB_REQUIRE_TOOLS=1``
(``.ci/run``), and there the same absence is a failure: a check CI skips silently proves nothing.

The same holds for the Python extras only some tests use (Playwright, mkdocs, matplotlib,
Celery): ``make test`` installs the ``dev`` extra only, the others come with the targets that use
them (``make bench``, ``make site``, ``make install-all``).
"""

from __future__ import annotations

import importlib
import os
import shutil
from types import ModuleType
from typing import NoReturn

import pytest

#: Set to 1 by CI: a missing tool fails the test that needs it instead of skipping it.
REQUIRE_TOOLS_VARIABLE = "TASKLAB_REQUIRE_TOOLS"


def tools_required() -> bool:
    return os.environ.get(REQUIRE_TOOLS_VARIABLE, "") not in ("", "0")


def missing(what: str, install: str) -> NoReturn:
    """Skip the test (a learner's machine) or fail it (CI), naming what is missing and how to get it."""
    message = f"{what} is missing: {install}"
    if tools_required():
        pytest.fail(f"{message} ({REQUIRE_TOOLS_VARIABLE}=1: a missing tool fails here instead of skipping)", pytrace=False)
    pytest.skip(message, allow_module_level=True)


def require_binary(name: str, install: str) -> str:
    """The full path of a program on ``PATH``, or skip/fail naming it."""
    found = shutil.which(name)
    if found is None:
        missing(f"{name} (not on PATH)", install)
    return found


def require_module(name: str, extra: str) -> ModuleType:
    """Import an optional Python dependency, or skip/fail saying which extra brings it."""
    try:
        return importlib.import_module(name)
    except ImportError:
        missing(f"the Python module {name!r}", f"pip install -e '.[{extra}]' (or make install-all)")


CHROMIUM_INSTALL = "apt-get install chromium (make system-deps), then pip install -e '.[browser]'"
PROMETHEUS_INSTALL = "apt-get install prometheus (make system-deps)"


def require_chromium() -> str:
    """Debian's Chromium (``/usr/bin/chromium``), and Playwright to drive it: ``playwright install``
    cannot download a browser here, so Playwright launches this one by its path."""
    executable = require_binary("chromium", CHROMIUM_INSTALL)
    require_module("playwright.sync_api", "browser")
    return executable
