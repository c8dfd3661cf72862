"""``python -m phase5_scaling.reconciler``: phase 3's reconciler over phase 5's five queues, counted.

A task re-enqueued by the reconciler goes back to the queue of its priority.
"""

from __future__ import annotations

import sys

from redis import Redis
from sqlalchemy.engine import Engine

from phase5_scaling.jobs import enqueue_task, make_queues
from phase5_scaling.settings import Phase5Settings, load_settings
from shared.monitoring.logs import configure_logging
from shared.monitoring.reconciler import monitored_reconciler
from shared.recovery.reconciler import Reconciler, run_reconciler


def build_reconciler(engine: Engine, connection: Redis, settings: Phase5Settings, name: str) -> Reconciler:
    """A reconciler for the five priority queues whose repairs land in the metrics."""
    queues = make_queues(connection)
    return monitored_reconciler(
        engine, connection, settings, name, queues=queues, enqueue=lambda task: enqueue_task(queues, task, settings)
    )


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
