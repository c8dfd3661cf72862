"""Phase 6 API: phase 5's, published: API keys, a per-key rate limit, and a patient start.

The routes, priorities, status cache, metrics, ``/stats`` and dashboard are phase 5's
(:mod:`scaling.api`), unchanged. Phase 6 adds what a port open to a network needs:

* every route but ``/health`` and the docs requires an API key, and ``POST /tasks`` is rate
  limited per key in Redis (:mod:`phase6_docker.security`);
* the server waits for PostgreSQL and Redis when it starts, with backoff and a log line per
  try (:mod:`phase6_docker.startup`), instead of crashing while they boot.

Compose runs it as ``uvicorn phase6_docker.api:app --workers N``: N processes, one port, one
rate limit between them (it lives in Redis).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from shared.settings import load_settings

from .monitoring.middleware import RequestMonitoringMiddleware
from .scaling.api import create_scaling_app
from .security import add_security
from .startup import wait_for_services


def wait_first(app: FastAPI) -> None:
    """Make the app's lifespan wait for its database and Redis before it opens them."""
    open_stores = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings = load_settings()
        # In a thread: the waits sleep, and the event loop stays free to answer /health meanwhile.
        await asyncio.to_thread(wait_for_services, settings.database_url, settings.redis_url)
        async with open_stores(app):
            yield

    app.router.lifespan_context = lifespan


def create_app() -> FastAPI:
    app = create_scaling_app(
        title="tasklab · phase 6 (the Compose deployment)",
        description="Phase 5's priorities, worker pool and status cache, deployed with Docker Compose: "
        "every route but /health and the docs needs an API key (Authorization: Bearer <key> or X-API-Key), "
        "and POST /tasks is rate limited per key (429 with Retry-After; RateLimit-* headers on every answer).",
    )
    wait_first(app)
    return add_security(app, after=[RequestMonitoringMiddleware])


#: Settings, keys, database, Redis, metrics and logs are set up when the server starts, never at import.
app = create_app()
