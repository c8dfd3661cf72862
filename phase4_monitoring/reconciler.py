"""``python -m phase4_monitoring.reconciler``: phase 3's reconciler on phase 4's queue, counted.

The reconciler is phase 3's (:mod:`recovery.reconciler`); counting its repairs is phase
4's (:mod:`monitoring.reconciler`). This module names the queue and the job.
"""

from __future__ import annotations

import sys

from redis import Redis
from sqlalchemy.engine import Engine

from .jobs import enqueue_task, make_queue
from .monitoring.logs import configure_logging
from .monitoring.reconciler import monitored_reconciler
from .monitoring.settings import MonitoringSettings, load_settings
from .recovery.reconciler import Reconciler, run_reconciler


def build_reconciler(engine: Engine, connection: Redis, settings: MonitoringSettings, name: str) -> Reconciler:
    """A reconciler for the ``phase4:tasks`` queue whose repairs land in the metrics."""
    queue = make_queue(connection)
    return monitored_reconciler(
        engine, connection, settings, name, queues=[queue], enqueue=lambda task: enqueue_task(queue, task, settings)
    )


def main(argv: list[str] | None = None) -> int:
    settings = load_settings()
    return run_reconciler(
        argv,
        prog="python -m phase4_monitoring.reconciler",
        build=build_reconciler,  # type: ignore[arg-type]
        settings=settings,
        configure_logging=lambda level: configure_logging(level, settings.log_format),
    )


if __name__ == "__main__":
    sys.exit(main())
