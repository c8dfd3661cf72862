"""``python -m phase5_scaling.reconciler``: phase 3's reconciler over phase 5's five queues, counted.

The pool runs one in a thread already (:mod:`scaling.pool`); this command runs one on
its own, for a pool started with ``--no-reconciler``. A task re-enqueued by the reconciler goes
back to the queue of its priority.
"""

from __future__ import annotations

import sys

from .monitoring.logs import configure_logging
from .recovery.reconciler import run_reconciler
from .scaling.reconciler import build_reconciler
from .scaling.settings import load_settings


def main(argv: list[str] | None = None) -> int:
    settings = load_settings()
    return run_reconciler(
        argv,
        prog="python -m phase5_scaling.reconciler",
        build=build_reconciler,  # type: ignore[arg-type]
        settings=settings,
        configure_logging=lambda level: configure_logging(level, settings.log_format),
    )


if __name__ == "__main__":
    sys.exit(main())
