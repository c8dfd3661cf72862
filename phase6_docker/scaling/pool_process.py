"""How the supervisor starts one pool process: ``python -m scaling.pool_process --child …``.

It runs :func:`scaling.pool.main`, like ``python -m scaling.pool`` would; the only
difference is what the process never loads. A pool process is one of N, so every megabyte it
imports is paid N times (phase 5's target allows a pool process 70 MB). One megabyte-sized import buys
it nothing: structlog's ``dev`` module imports rich, and with it pygments and attrs, whenever
rich is installed, to pretty-print exceptions on a terminal. The project installs rich for its
command-line tools; a pool process writes its log lines to a pipe or a file and formats its
tracebacks without it. Marking rich absent before anything imports structlog makes that
optional import fail as it would on a machine without rich: about 4 MB less per process, the
same log lines. (``docs/benchmarks.md`` has the figures.)

greenlet is declined the same way. structlog's (deprecated) ``threadlocal`` module imports it
when it is installed (SQLAlchemy brings it, for its asyncio extension), and greenlet loads the
C++ runtime: about 1 MB, for green threads a pool process never runs. Without it structlog uses
``threading.local``, as on a machine without greenlet, and SQLAlchemy's synchronous engine, the
only one a pool process uses, does not need it.

And a pool process runs ``python -OO`` (``POOL_PYTHON_OPTIMIZE``, 2 by default): without the
docstrings of every module it imports (SQLAlchemy's alone are megabytes) and without ``assert``
statements, which no code may rely on (Python's ``-O`` exists). About 5 MB less per process. It
pays only when the optimized bytecode (``*.opt-2.pyc``) is on disk: without it every start
compiles each module from source, which costs more memory than it saves, and start-up time. ``make install``
and the image's build write it (``python -m compileall -o 2``); where it is missing, the
supervisor starts its pool processes without the option (:func:`interpreter_options`).
"""

from __future__ import annotations

import importlib.util
import os
import sys

#: Optional imports a pool process declines: found in ``sys.modules`` as ``None``, an
#: ``import`` of them raises ImportError, which is what their optional importers expect.
DECLINED_OPTIONAL_IMPORTS: tuple[str, ...] = ("rich", "greenlet")


def decline_optional_imports() -> None:
    """Make ``import rich`` (and any other name declined) raise ImportError in this process.

    ``None`` in ``sys.modules`` is the import system's own "known to be missing" mark; typeshed
    types the dict as modules only, hence the ignore. A module already loaded is left alone.
    """
    for name in DECLINED_OPTIONAL_IMPORTS:
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]


#: Modules whose optimized bytecode tells whether ``-O``/``-OO`` can pay: the standard library's
#: and the largest library a pool process imports. Checked by file, without importing them.
BYTECODE_SENTINELS: tuple[str, ...] = ("asyncio", "sqlalchemy")


def optimized_bytecode_on_disk(level: int) -> bool:
    """Whether ``python -O``×``level`` would find its ``.opt-N.pyc`` files instead of compiling from source."""
    for name in BYTECODE_SENTINELS:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            return False
        if not os.path.exists(importlib.util.cache_from_source(spec.origin, optimization=level)):
            return False
    return True


def interpreter_options(optimize: int) -> list[str]:
    """The interpreter's options for a pool process: ``["-OO"]`` for 2, when its bytecode is there."""
    if optimize <= 0 or not optimized_bytecode_on_disk(optimize):
        return []
    return ["-" + "O" * optimize]


if __name__ == "__main__":
    decline_optional_imports()  # before the import below brings structlog in

    from .pool import main

    sys.exit(main())
