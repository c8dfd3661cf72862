"""Phase 6 API: phase 5's, published: API keys, a per-key rate limit, and a patient start.

The routes, priorities, status cache, metrics, ``/stats`` and dashboard are phase 5's
(:mod:`scaling.api`), unchanged. Phase 6 adds what a port open to a network needs:

* every route but the probes and the docs requires an API key, and ``POST /tasks`` is rate
  limited per key in Redis (:mod:`phase6_docker.security`);
* the server waits for PostgreSQL and Redis when it starts, with backoff and a log line per
  try (:mod:`phase6_docker.startup`), instead of crashing while they boot;
* ``GET /ready/accepting``, an orchestrator's readiness probe (Kubernetes, ``k8s/``): 200 while
  this process can accept a task, which needs the database and its table but not Redis.

Compose runs it as ``uvicorn phase6_docker.api:app --workers N``: N processes, one port, one
rate limit between them (it lives in Redis).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, Request, status
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from shared.settings import load_settings

from .monitoring.logs import configure_logging
from .monitoring.middleware import RequestMonitoringMiddleware
from .monitoring.settings import load_settings as load_monitoring_settings
from .scaling.api import create_scaling_app
from .security import ACCEPTING_PATH, add_security
from .startup import wait_for_services
from .store import TASK_TABLE


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


def logs_first(app: FastAPI) -> None:
    """Set up the log lines before anything logs, so that every line follows ``LOG_FORMAT``.

    Phase 5's lifespan sets them up once the stores are open; phase 6 wraps it in the key check
    and the start-up waits, whose lines would otherwise come out in the default console format,
    one non-JSON line in a JSON log that a log pipeline cannot parse.
    """
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings = load_monitoring_settings()
        configure_logging(settings.log_level, settings.log_format)
        async with inner(app):
            yield

    app.router.lifespan_context = lifespan


#: The readiness probe's route. ``/ready`` keeps its contract (503 when the database *or* Redis is
#: down); this one answers what a load balancer needs to know.
accepting_router = APIRouter(tags=["health"])


@accepting_router.get(
    ACCEPTING_PATH,
    responses={503: {"description": "The database or its task table does not answer: no task can be accepted."}},
)
def read_accepting(request: Request) -> Any:
    """Readiness for a load balancer: 200 while this process can accept a task, Redis or not.

    ``POST /tasks`` stores the row first; with Redis down the row waits and the reconciler
    enqueues it once Redis is back (the rate limit lets submits through meanwhile). So Redis
    being down must not take every API pod out of the Service: its state is reported in the
    body only. The database is what a submit needs: its task table is read (no row, ``LIMIT 0``),
    so a pod is not ready before the schema step created it, nor while the database is down.
    """
    checks: dict[str, str] = {}
    try:
        with request.app.state.engine.connect() as connection:
            connection.execute(select(TASK_TABLE.c.id).limit(0))
        checks["database"] = "ok"
    except SQLAlchemyError as exc:
        checks["database"] = f"down: {type(exc).__name__}"
    try:
        request.app.state.redis.ping()
        checks["redis"] = "ok"
    except RedisError as exc:
        checks["redis"] = f"down: {type(exc).__name__} (tasks are still accepted; the reconciler enqueues them later)"
    if checks["database"] != "ok":
        return JSONResponse(
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            content={"detail": "not accepting tasks: the database or its task table does not answer", "checks": checks},
        )
    return {"status": "accepting", "checks": checks}


def create_app() -> FastAPI:
    app = create_scaling_app(
        title="tasklab · phase 6 (the Compose deployment)",
        description="Phase 5's priorities, worker pool and status cache, deployed with Docker Compose: "
        "every route but the probes (/health, /ready/accepting) and the docs needs an API key "
        "(Authorization: Bearer <key> or X-API-Key), "
        "and POST /tasks is rate limited per key (429 with Retry-After; RateLimit-* headers on every answer).",
    )
    app.include_router(accepting_router)
    wait_first(app)
    add_security(app, after=[RequestMonitoringMiddleware])
    logs_first(app)
    return app


#: Settings, keys, database, Redis, metrics and logs are set up when the server starts, never at import.
app = create_app()
