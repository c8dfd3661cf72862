"""The parts of the HTTP API that are the same in every phase.

What a phase teaches is how ``POST /tasks`` gets work done (a background task, an RQ job, a
retried job …); that route lives in the phase's ``api.py``. Everything around it is identical
and lives here: reading tasks, health, the body-size limit, the error shape, and the app
skeleton that wires them together.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline
from redis import Redis
from redis.exceptions import RedisError
from rq import Queue
from sqlalchemy import text
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlmodel import Session
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.models import TaskPage, TaskRead, TaskStatus
from shared.redis_server import connect_redis
from shared.settings import Settings
from shared.tasks import TaskType

from . import store
from .db import create_db_engine, init_db

# ----------------------------------------------------------------------------------------------
# Dependencies


def get_session(request: Request) -> Iterator[Session]:
    """One database session per request, from the engine the app's lifespan created."""
    with Session(request.app.state.engine, expire_on_commit=False) as session:
        yield session


#: ``scope="function"`` closes the session when the endpoint returns, before the response is
#: sent and before any background task runs. With the default ("request") scope it would stay
#: open, holding a pooled connection, until phase 1's background work had finished, and a
#: burst of requests could then hold every connection while their background tasks wait for
#: one: a deadlock that ends only at the pool's 30 s timeout.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]

#: Documented error responses, reused by every route that can produce them.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    404: {
        "description": "No task with this id.",
        "content": {"application/json": {"example": {"detail": "task 3f1c… not found"}}},
    },
    413: {
        "description": "Request body larger than the limit (1 MiB by default).",
        "content": {"application/json": {"example": {"detail": "request body exceeds 1048576 bytes"}}},
    },
    503: {
        "description": "A backing service (database or Redis) is unreachable.",
        "content": {"application/json": {"example": {"detail": "task store unreachable"}}},
    },
}

# ----------------------------------------------------------------------------------------------
# Routes every phase serves

tasks_router = APIRouter(prefix="/tasks", tags=["tasks"])


@tasks_router.get("/{task_id}", response_model=TaskRead, responses={404: ERROR_RESPONSES[404]})
def read_task(task_id: uuid.UUID, session: SessionDep) -> TaskRead:
    """Return one task, with its status, progress and result."""
    task = store.get_task(session, task_id)
    if task is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"task {task_id} not found")
    return TaskRead.model_validate(task)


@tasks_router.get("", response_model=TaskPage)
def list_tasks(
    session: SessionDep,
    task_status: Annotated[TaskStatus | None, Query(alias="status", description="Only tasks in this status.")] = None,
    task_type: Annotated[TaskType | None, Query(description="Only tasks of this type.")] = None,
    limit: Annotated[int, Query(ge=1, description=f"Page size; values above {store.MAX_PAGE_SIZE} are capped.")] = 20,
    offset: Annotated[
        int,
        # Bounded: an offset makes the database read and discard that many rows (and a huge
        # one overflows its integer type: a 500, not an answer). Deeper pages use the cursor.
        Query(
            ge=0,
            le=store.MAX_OFFSET,
            description=f"How many matching tasks to skip, at most {store.MAX_OFFSET:,}; page deeper with cursor.",
        ),
    ] = 0,
    cursor: Annotated[
        str | None,
        Query(
            max_length=store.MAX_CURSOR_LENGTH,
            description="The next_cursor of the previous page (same filters): continues right after it.",
        ),
    ] = None,
) -> TaskPage:
    """List tasks, newest first, optionally filtered by status and type; continue with next_cursor."""
    limit = min(limit, store.MAX_PAGE_SIZE)
    after = None
    if cursor is not None:
        if offset:
            raise _query_error("offset", offset, "use either cursor or offset: a cursor already says where the page starts")
        try:
            after = store.PageCursor.decode(cursor)
        except store.InvalidCursor as exc:
            raise _query_error("cursor", cursor, str(exc)) from None
    listing = store.list_tasks(session, status=task_status, task_type=task_type, limit=limit, offset=offset, after=after)
    return TaskPage(
        items=[TaskRead.model_validate(t) for t in listing.items],
        total=listing.total,
        total_is_exact=listing.total_is_exact,
        limit=limit,
        offset=offset,
        next_cursor=listing.next_cursor.encode() if listing.next_cursor else None,
    )


def _query_error(parameter: str, value: object, message: str) -> RequestValidationError:
    """A 422 in FastAPI's own shape for a query parameter that passed its type but not our check."""
    return RequestValidationError([{"type": "value_error", "loc": ("query", parameter), "msg": message, "input": value}])


health_router = APIRouter(tags=["health"])


@health_router.get("/health")
def read_health() -> dict[str, str]:
    """Liveness: the process answers HTTP. Says nothing about the database or Redis."""
    return {"status": "ok"}


#: Readiness, for the phases with a queue (2 on): their lifespan puts ``redis`` on ``app.state``.
readiness_router = APIRouter(tags=["health"])


@readiness_router.get(
    "/ready",
    responses={503: {"description": "The database or Redis does not answer; the body names which."}},
)
def read_readiness(request: Request) -> Any:
    """Readiness: 200 when both the database and Redis answer, else 503 naming what is down."""
    checks: dict[str, str] = {}
    try:
        with request.app.state.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except SQLAlchemyError as exc:
        checks["database"] = f"down: {type(exc).__name__}"
    try:
        request.app.state.redis.ping()
        checks["redis"] = "ok"
    except RedisError as exc:
        checks["redis"] = f"down: {type(exc).__name__}"
    down = [name for name, state in checks.items() if state != "ok"]
    if down:
        return JSONResponse(
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            content={"detail": f"not ready: {', '.join(down)} unreachable", "checks": checks},
        )
    return {"status": "ready", "checks": checks}


# ----------------------------------------------------------------------------------------------
# Request body limit


class BodySizeLimitMiddleware:
    """Answer 413 for a request body over the limit, before anything parses it.

    FastAPI reads a whole body into memory, with no limit. A declared ``Content-Length`` over
    the limit is refused at once; a chunked body (no length) is counted as it streams and cut
    off as soon as it crosses the limit, so a client cannot exhaust memory by lying.

    The limit is ``max_bytes`` when given, else ``app.state.settings.max_body_bytes``: settings
    are read in the app's lifespan, after the middleware stack is built.
    """

    def __init__(self, app: ASGIApp, max_bytes: int | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes if self.max_bytes is not None else scope["app"].state.settings.max_body_bytes
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._reject(send, limit)
            return

        received = 0
        rejected = False
        response_started = False

        async def counting_receive() -> Message:
            nonlocal received, rejected
            if rejected:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # Answer now, then tell the app the client went away: it stops reading,
                    # and whatever it tries to send afterwards is dropped below.
                    rejected = True
                    if not response_started:
                        await self._reject(send, limit)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal response_started
            if rejected:
                return
            response_started = response_started or message["type"] == "http.response.start"
            await send(message)

        await self.app(scope, counting_receive, guarded_send)

    @staticmethod
    async def _reject(send: Send, limit: int) -> None:
        response = JSONResponse(
            status_code=status.HTTP_413_CONTENT_TOO_LARGE,
            content={"detail": f"request body exceeds {limit} bytes"},
        )
        await response({"type": "http"}, _empty_receive, send)


async def _empty_receive() -> Message:  # pragma: no cover - a response never reads the body
    return {"type": "http.disconnect"}


# ----------------------------------------------------------------------------------------------
# The app skeleton


def queue_lifespan(
    load_settings: Callable[[], Settings],
    make_queue: Callable[[Redis], Queue],
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """The lifespan of a phase with a queue: open the database and Redis at start, close them at stop.

    Phases differ only in their settings (phase 3 adds retry policy) and their queue, so they
    pass those in; everything is built when the server starts, nothing at import.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings = load_settings()
        if not settings.redis_url:
            raise RuntimeError(f"REDIS_URL is not set: {app.title} needs Redis (make run starts one)")
        engine = create_db_engine(settings.database_url, busy_timeout_ms=settings.db_busy_timeout_ms)
        init_db(engine)
        redis = connect_redis(settings.redis_url, timeout_seconds=settings.redis_timeout_seconds)
        app.state.settings = settings
        app.state.engine = engine
        app.state.redis = redis
        app.state.queue = make_queue(redis)
        yield
        redis.close()
        engine.dispose()

    return lifespan


async def store_unreachable(request: Request, exc: Exception) -> JSONResponse:
    """A database that does not answer is an outage (503), not a bug in the request (500)."""
    return JSONResponse(
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        content={"detail": f"task store unreachable: {type(exc).__name__}"},
    )


def json_safe(value: Any) -> Any:
    """``value`` with every non-finite float (NaN, ±Infinity) replaced by its name as a string.

    Python's JSON parser accepts ``NaN`` and ``Infinity``, which JSON does not have, and the
    response encoder refuses them. A request carrying one would otherwise fail twice: a 422
    that echoes the bad input could not be written, and the client would get a 500.
    """
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    return value


async def request_invalid(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422 (same shape), able to echo any input the client sent, even NaN."""
    assert isinstance(exc, RequestValidationError)  # registered for this exception only
    return JSONResponse(
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
        content={"detail": json_safe(jsonable_encoder(exc.errors()))},
    )


def create_base_app(
    *,
    title: str,
    description: str,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]],
) -> FastAPI:
    """A FastAPI app with the shared routes, error handling, body limit and offline docs.

    The phase's ``lifespan`` must put ``settings`` and ``engine`` on ``app.state``: nothing is
    built at import time, so several phases' apps can live in one process.
    """
    # FastAPIOffline is FastAPI whose /docs (Swagger UI) and /redoc pages load their JavaScript
    # and CSS from this server, from files the fastapi-offline package ships, instead of from a
    # CDN: without it, /docs is a blank page on a machine with no internet access.
    app = FastAPIOffline(title=title, description=description, version="0.1.0", lifespan=lifespan)
    app.add_middleware(BodySizeLimitMiddleware)
    app.add_exception_handler(RequestValidationError, request_invalid)
    app.add_exception_handler(OperationalError, store_unreachable)
    app.add_exception_handler(PoolTimeoutError, store_unreachable)
    app.include_router(health_router)
    app.include_router(tasks_router)
    return app
