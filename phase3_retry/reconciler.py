"""``python -m phase3_retry.reconciler``: the reconciler, on phase 3's queue.

The reconciler itself (:class:`recovery.reconciler.Reconciler`) is phase 3's lesson and
every later phase runs it unchanged, so it lives in ``recovery/``. What is phase 3's own
is only this wiring: which queue it watches, and which job it enqueues a repaired task as.
"""

from __future__ import annotations

import sys

from redis import Redis
from sqlalchemy.engine import Engine

from .jobs import enqueue_task, make_queue
from .recovery.reconciler import Reconciler, run_reconciler
from .recovery.settings import RecoverySettings


def build_reconciler(engine: Engine, connection: Redis, settings: RecoverySettings, name: str) -> Reconciler:
    """A reconciler for the ``phase3:tasks`` queue."""
    queue = make_queue(connection)
    return Reconciler(
        engine, connection, settings, queues=[queue], enqueue=lambda task: enqueue_task(queue, task, settings), name=name
    )


def main(argv: list[str] | None = None) -> int:
    return run_reconciler(argv, prog="python -m phase3_retry.reconciler", build=build_reconciler)


if __name__ == "__main__":
    sys.exit(main())
