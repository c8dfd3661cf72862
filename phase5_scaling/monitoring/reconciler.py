"""Phase 3's reconciler, counted: its repairs go to the metrics files of this deployment.

Started by a worker (or a pool), a reconciler inherits the worker's metrics directory
(``PROMETHEUS_MULTIPROC_DIR``) and writes a file of its own there, so the worker's ``/metrics``
exports its repairs. Started on its own, it writes to a directory nobody locks, which the first
exporter to scrape adopts (:mod:`monitoring.metrics`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from redis import Redis
from rq import Queue
from sqlalchemy.engine import Engine

from ..recovery.reconciler import Enqueue, Reconciler
from .events import MonitoringEvents
from .metrics import MULTIPROC_DIR_ENV, TaskMetrics, unowned_directory, use_directory
from .settings import MonitoringSettings


def monitored_reconciler(
    engine: Engine,
    connection: Redis,
    settings: MonitoringSettings,
    name: str,
    *,
    queues: Sequence[Queue],
    enqueue: Enqueue,
) -> Reconciler:
    """A reconciler over ``queues`` whose repairs are counted and logged."""
    inherited = os.environ.get(MULTIPROC_DIR_ENV)
    directory = Path(inherited) if inherited else unowned_directory(settings.metrics_root, "reconciler")
    pid = os.getpid()
    use_directory(directory, lambda: f"reconciler-{pid}")
    return Reconciler(
        engine, connection, settings, queues=queues, enqueue=enqueue, events=MonitoringEvents(TaskMetrics()), name=name
    )
