"""``python -m phase4_monitoring.reconciler``: phase 3's reconciler on phase 4's queue, counted.

Started by a worker, it inherits the worker's metrics directory (``PROMETHEUS_MULTIPROC_DIR``)
and writes its own file there, so the worker's ``/metrics`` exports its repairs. Started on its
own, it writes to a directory nobody locks, which the first exporter scraped adopts.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from redis import Redis
from sqlalchemy.engine import Engine

from phase4_monitoring.jobs import enqueue_task, make_queue
from shared.monitoring.events import MonitoringEvents
from shared.monitoring.logs import configure_logging
from shared.monitoring.metrics import (
    MULTIPROC_DIR_ENV,
    TaskMetrics,
    unowned_directory,
    use_directory,
)
from shared.monitoring.settings import MonitoringSettings, load_settings
from shared.recovery.reconciler import Reconciler, run_reconciler
from shared.recovery.settings import RecoverySettings


def build_reconciler(engine: Engine, connection: Redis, settings: RecoverySettings, name: str) -> Reconciler:
    """A reconciler for the ``phase4:tasks`` queue whose repairs land in the metrics."""
    assert isinstance(settings, MonitoringSettings)
    inherited = os.environ.get(MULTIPROC_DIR_ENV)
    directory = Path(inherited) if inherited else unowned_directory(settings.metrics_root, "reconciler")
    pid = os.getpid()
    use_directory(directory, lambda: f"reconciler-{pid}")
    queue = make_queue(connection)
    return Reconciler(
        engine,
        connection,
        settings,
        queues=[queue],
        enqueue=lambda task: enqueue_task(queue, task, settings),
        events=MonitoringEvents(TaskMetrics()),
        name=name,
    )


def main(argv: list[str] | None = None) -> int:
    settings = load_settings()
    return run_reconciler(
        argv,
        prog="python -m phase4_monitoring.reconciler",
        build=build_reconciler,
        settings=settings,
        configure_logging=lambda level: configure_logging(level, settings.log_format),
    )


if __name__ == "__main__":
    sys.exit(main())
