"""Phase 5's API: phase 4's, with each task on the queue of its priority, and a status cache.

The routes, metrics, logs, ``/stats`` and dashboard are phase 4's (:mod:`monitoring.api`).
Three things differ: ``POST /tasks`` puts a task on ``phase5:p<priority>``, so workers take the
urgent ones first; it stores and queues the submits that arrive together in one transaction
each (:mod:`scaling.submit`); and ``GET /tasks/{id}`` reads finished tasks from a Redis
cache that cannot go stale (:mod:`scaling.cache`).
Phase 5 serves it as it is; phase 6 puts API keys and a rate limit in front of it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from ..monitoring.api import create_monitored_app, monitored_lifespan
from .cache import StatusCache
from .jobs import enqueue_task, enqueue_tasks, make_queues
from .settings import ScalingSettings, load_settings
from .submit import SubmitBatcher, write_batch
from .submit import router as submit_router

open_monitored = monitored_lifespan(load_settings, make_queues, enqueue_task)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Phase 4's stores, logs and metrics, then the status cache on the same Redis."""
    async with open_monitored(app):
        settings: ScalingSettings = app.state.settings
        app.state.task_cache = StatusCache(app.state.redis, settings.status_cache_ttl_seconds)
        queues, engine = app.state.queues, app.state.engine
        app.state.submits = SubmitBatcher(
            lambda tasks: write_batch(engine, tasks, lambda stored: enqueue_tasks(queues, stored, settings)),
            settings.submit_batch_max,
        )
        try:
            yield
        finally:
            await app.state.submits.drain()  # every submit handed in is answered before the stores close


def create_scaling_app(*, title: str, description: str) -> FastAPI:
    """The phase 5 app; settings, database, Redis, metrics and logs are opened when it starts."""
    return create_monitored_app(title=title, description=description, lifespan=lifespan, submit=submit_router)
