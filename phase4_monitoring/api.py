"""Phase 4 API: phase 3's, observable.

The routes and everything that observes them (metrics, request ids, structured logs, ``/stats``,
the dashboard) are what phase 4 teaches and phases 5 and 6 keep, so they live in
:mod:`monitoring.api`; chapter 4 walks through them there. This module wires them to
phase 4's single queue.
"""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import FastAPI
from redis import Redis
from rq import Queue
from rq.job import Job

from shared.models import Task

from .jobs import enqueue_task, make_queue
from .monitoring.api import create_monitored_app, monitored_lifespan
from .monitoring.settings import MonitoringSettings, load_settings


def make_queues(connection: Redis) -> list[Queue]:
    """Phase 4 has one queue, ``phase4:tasks``."""
    return [make_queue(connection)]


def enqueue_on_the_queue(queues: Sequence[Queue], task: Task, settings: MonitoringSettings) -> Job:
    return enqueue_task(queues[0], task, settings)


def create_app() -> FastAPI:
    return create_monitored_app(
        title="tasklab · phase 4 (monitoring)",
        description="Phase 3's trustworthy queue, made observable: Prometheus metrics, structured logs "
        "with correlation ids, /stats and a live dashboard.",
        lifespan=monitored_lifespan(load_settings, make_queues, enqueue_on_the_queue),
    )


#: Settings, database, Redis, metrics and logs are set up when the server starts, never at import.
app = create_app()
