"""Phase 5's API: phase 4's, with each task on the queue of its priority, and a status cache.

The routes, metrics, logs, ``/stats`` and dashboard are phase 4's, unchanged
(:mod:`shared.monitoring.api`). Two things differ: ``POST /tasks`` puts a task on
``phase5:p<priority>``, so workers take the urgent ones first; and ``GET /tasks/{id}`` reads
finished tasks from a Redis cache that cannot go stale (:mod:`shared.scaling.cache`).
Phase 5 serves it as it is; phase 6 puts API keys and a rate limit in front of it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from shared.monitoring.api import create_monitored_app, monitored_lifespan
from shared.scaling.cache import StatusCache
from shared.scaling.jobs import enqueue_task, make_queues
from shared.scaling.settings import ScalingSettings, load_settings

open_monitored = monitored_lifespan(load_settings, make_queues, enqueue_task)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Phase 4's stores, logs and metrics, then the status cache on the same Redis."""
    async with open_monitored(app):
        settings: ScalingSettings = app.state.settings
        app.state.task_cache = StatusCache(app.state.redis, settings.status_cache_ttl_seconds)
        yield


def create_scaling_app(*, title: str, description: str) -> FastAPI:
    """The phase 5 app; settings, database, Redis, metrics and logs are opened when it starts."""
    return create_monitored_app(title=title, description=description, lifespan=lifespan)
