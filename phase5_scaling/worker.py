"""``python -m phase5_scaling.worker --processes N``: a supervised pool of worker processes, no fork per job.

Phase 4 runs one RQ worker per process, and RQ forks a work horse for every job: about 40 ms
per job before any work is done. Phase 5 runs N RQ ``SimpleWorker`` processes under one
supervisor, which replaces a process that dies, runs the reconciler, RQ's scheduler and the
aging of priorities once for the whole pool, serves the pool's metrics on one port, and drains
the pool on SIGTERM. The code is :mod:`scaling.pool`: phase 6 runs the same pool.
"""

from __future__ import annotations

import sys

from .scaling.pool import main as run_pool


def main(argv: list[str] | None = None) -> int:
    return run_pool(argv, prog="python -m phase5_scaling.worker")


if __name__ == "__main__":
    sys.exit(main())
