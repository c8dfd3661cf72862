"""How the supervisor starts one pool process: ``python -m shared.scaling.pool_process --child …``.

It runs :func:`shared.scaling.pool.main`, like ``python -m shared.scaling.pool`` would; the only
difference is what the process never loads. A pool process is one of N, so every megabyte it
imports is paid N times (issue 7 prices a pool process at 70 MB). One megabyte-sized import buys
it nothing: structlog's ``dev`` module imports rich, and with it pygments and attrs, whenever
rich is installed, to pretty-print exceptions on a terminal. The project installs rich for its
command-line tools; a pool process writes its log lines to a pipe or a file and formats its
tracebacks without it. Marking rich absent before anything imports structlog makes that
optional import fail as it would on a machine without rich: about 4 MB less per process, the
same log lines. (``docs/benchmarks.md`` has the figures.)
"""

from __future__ import annotations

import sys

#: Optional imports a pool process declines: found in ``sys.modules`` as ``None``, an
#: ``import`` of them raises ImportError, which is what their optional importers expect.
DECLINED_OPTIONAL_IMPORTS: tuple[str, ...] = ("rich",)


def decline_optional_imports() -> None:
    """Make ``import rich`` (and any other name declined) raise ImportError in this process.

    ``None`` in ``sys.modules`` is the import system's own "known to be missing" mark; typeshed
    types the dict as modules only, hence the ignore. A module already loaded is left alone.
    """
    for name in DECLINED_OPTIONAL_IMPORTS:
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]


if __name__ == "__main__":
    decline_optional_imports()  # before the import below brings structlog in

    from shared.scaling.pool import main

    sys.exit(main())
