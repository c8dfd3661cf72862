"""Phase 5 API: phase 4's, with each task on the queue of its priority, and a status cache.

The routes, metrics, logs, ``/stats`` and dashboard are phase 4's, unchanged
(:mod:`shared.monitoring.api`). Two things differ: ``POST /tasks`` puts a task on
``phase5:p<priority>``, so workers take the urgent ones first; and ``GET /tasks/{id}`` reads
finished tasks from a Redis cache that cannot go stale (:mod:`phase5_scaling.cache`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from phase5_scaling.cache import StatusCache
from phase5_scaling.jobs import enqueue_task, make_queues
from phase5_scaling.settings import Phase5Settings, load_settings
from shared.monitoring.api import create_monitored_app, monitored_lifespan

open_monitored = monitored_lifespan(load_settings, make_queues, enqueue_task)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Phase 4's stores, logs and metrics, then the status cache on the same Redis."""
    async with open_monitored(app):
        settings: Phase5Settings = app.state.settings
        app.state.task_cache = StatusCache(app.state.redis, settings.status_cache_ttl_seconds)
        yield


def create_app() -> FastAPI:
    return create_monitored_app(
        title="tasklab · phase 5 (priorities and a worker pool)",
        description="Phase 4's observable queue with five priority levels (highest first, no level "
        "starved), a supervised pool of worker processes, and a status cache in Redis.",
        lifespan=lifespan,
    )


#: Settings, database, Redis, metrics and logs are set up when the server starts, never at import.
app = create_app()
