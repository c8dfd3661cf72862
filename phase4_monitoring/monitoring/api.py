"""The task API of phase 4 on: phase 3's routes, observable.

Everything phase 3 promised holds (store first, idempotent submit, retry and cancel). What
phase 4 added is what an operator sees:

* ``GET /metrics``: Prometheus text, from the files every process of this deployment writes
  (:mod:`monitoring.metrics`), plus the queue depth and live workers read from Redis;
* every request gets a correlation id (``X-Request-ID``), a structured log line and its HTTP
  metrics (:mod:`monitoring.middleware`); a task remembers the id of the request that
  created it, and the worker's lines for that task carry it;
* a submit and a cancel are counted where the API decides them;
* ``GET /stats`` and ``GET /dashboard`` (:mod:`monitoring.stats`,
  :mod:`monitoring.dashboard`): the same figures for a person.

Phases 4, 5 and 6 serve these routes unchanged; what differs is which queue a task goes to
(one queue in phase 4, one per priority in phase 5). A phase's ``api.py`` passes that in:
:func:`monitored_lifespan` puts ``queues`` and ``enqueue_task`` on ``app.state``.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Header, HTTPException, Request, Response, status
from redis import Redis
from redis.exceptions import RedisError
from rq import Queue
from rq.command import send_stop_job_command
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from shared.models import Task, TaskCreate, TaskRead, TaskStatus

from .. import store, transitions
from ..web import (
    ERROR_RESPONSES,
    SessionDep,
    create_base_app,
    queue_lifespan,
    readiness_router,
)
from . import aggregates, dashboard, stats
from .logs import configure_logging, get_logger
from .metrics import (
    CONTENT_TYPE,
    MetricsDirectories,
    QueueCollector,
    TaskMetrics,
    render,
    use_directory,
)
from .middleware import RequestMonitoringMiddleware
from .settings import MonitoringSettings
from .stats import StatsCache

log = get_logger(__name__)

#: A phase's queues, highest priority first (phase 4 has one).
MakeQueues = Callable[[Redis], list[Queue]]
#: Enqueues a stored task on one of the phase's queues.
EnqueueTask = Callable[[Sequence[Queue], Task, Any], Job]

IDEMPOTENCY_KEY_MAX_LENGTH = 255  # the width of the task.idempotency_key column


def monitored_lifespan(
    load_settings: Callable[[], MonitoringSettings],
    make_queues: MakeQueues,
    enqueue_task: EnqueueTask,
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """The stores (database, Redis, queues), then logs and metrics: all built when the server starts."""
    open_stores = queue_lifespan(load_settings, lambda connection: make_queues(connection)[0])

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_stores(app):
            settings: MonitoringSettings = app.state.settings
            configure_logging(settings.log_level, settings.log_format)
            directories = MetricsDirectories.claim(settings.metrics_root, "api")
            pid = os.getpid()
            use_directory(directories.own or settings.metrics_root, lambda: f"api-{pid}")
            app.state.queues = make_queues(app.state.redis)
            app.state.enqueue_task = lambda task: enqueue_task(app.state.queues, task, settings)
            app.state.metrics = TaskMetrics()
            app.state.metrics.initialize_series(submits=True)
            app.state.metrics_directories = directories
            # The /stats aggregates: their triggers before the first task of this run is written.
            await run_in_threadpool(aggregates.install, app.state.engine)
            namespace = app.state.queues[0].name
            app.state.stats_cache = StatsCache(app.state.redis, namespace, settings.stats_cache_seconds)
            folding = asyncio.create_task(fold_periodically(app.state.engine, settings.stats_fold_seconds))
            log.info("api started", metrics_dir=str(directories.own))
            yield
            folding.cancel()

    return lifespan


async def fold_periodically(engine: Engine, interval: float) -> None:
    """Keep the captured task changes few, so that a ``/stats`` after a quiet hour has little to fold."""
    while True:
        await asyncio.sleep(interval)
        try:
            await run_in_threadpool(aggregates.fold, engine)
        except SQLAlchemyError as exc:  # the database is away: the next round, or /stats itself, folds
            log.warning("folding the /stats aggregates failed", error=type(exc).__name__)


def queues_of(request: Request) -> Sequence[Queue]:
    """The queues this API feeds, highest priority first (one in phase 4)."""
    return list(request.app.state.queues)


def try_enqueue(request: Request, task: Task) -> None:
    """Enqueue a stored task if Redis answers; if not, the reconciler will (the row is the promise)."""
    try:
        request.app.state.enqueue_task(task)
    except RedisError as exc:
        log.warning("task stored but not queued; the reconciler will enqueue it", task_id=str(task.id), error=type(exc).__name__)


ERRORS: dict[int | str, dict[str, Any]] = {
    **ERROR_RESPONSES,
    409: {
        "description": "The request conflicts with the task's state or with an earlier request using the same Idempotency-Key."
    },
}

#: ``POST /tasks``, alone: phase 5 serves its own (:mod:`scaling.submit`) beside :data:`router`.
submit_router = APIRouter(prefix="/tasks", tags=["tasks"])
#: The routes on a task that exists: retry and cancel.
router = APIRouter(prefix="/tasks", tags=["tasks"])

SUBMIT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "A task with this Idempotency-Key exists already: here it is, unchanged."},
    409: ERRORS[409],
    413: ERRORS[413],
    503: ERRORS[503],
}
IDEMPOTENCY_KEY_HEADER = Header(
    alias="Idempotency-Key",
    min_length=1,
    max_length=IDEMPOTENCY_KEY_MAX_LENGTH,
    description="Any unique string (a UUID is best). Repeating it returns the first task instead of creating another.",
)


def same_request(task: Task, body: TaskCreate) -> bool:
    """Whether a stored task is what this body would create (payloads compared after validation)."""
    return (task.task_type, task.payload, task.priority) == (body.task_type, body.payload, body.priority)


def replay(task: Task, body: TaskCreate, response: Response) -> TaskRead:
    """Answer a repeated Idempotency-Key: the first task (200), or 409 if the body differs."""
    if not same_request(task, body):
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            detail=f"Idempotency-Key already used for task {task.id} with a different body",
        )
    response.status_code = status.HTTP_200_OK
    response.headers["Location"] = f"/tasks/{task.id}"
    return TaskRead.model_validate(task)


@submit_router.post("", status_code=status.HTTP_202_ACCEPTED, response_model=TaskRead, responses=SUBMIT_RESPONSES)
def create_task(
    body: TaskCreate,
    session: SessionDep,
    request: Request,
    response: Response,
    idempotency_key: Annotated[str | None, IDEMPOTENCY_KEY_HEADER] = None,
) -> TaskRead:
    """Store a task, then try to enqueue it; 202 either way once it is stored."""
    if idempotency_key is not None and (existing := store.get_task_by_idempotency_key(session, idempotency_key)):
        return replay(existing, body, response)
    try:
        task = store.insert_task(session, body, idempotency_key=idempotency_key, request_id=request.state.request_id)
    except IntegrityError:
        # Two requests with one key raced and the other one committed first: the unique
        # column decided, and this request is the repeat.
        session.rollback()
        existing = store.get_task_by_idempotency_key(session, idempotency_key or "")
        if existing is None:
            raise
        return replay(existing, body, response)
    answer = accepted(request, response, task)
    try_enqueue(request, task)
    return answer


def accepted(request: Request, response: Response, task: Task | TaskRead) -> TaskRead:
    """A stored task's 202: counted, logged, and where to find it."""
    request.app.state.metrics.submitted.labels(task.task_type, str(task.priority)).inc()
    log.info("task accepted", task_id=str(task.id), task_type=task.task_type, priority=task.priority)
    response.headers["Location"] = f"/tasks/{task.id}"
    return TaskRead.model_validate(task)


def get_task_or_404(session: Session, task_id: uuid.UUID) -> Task:
    task = store.get_task(session, task_id)
    if task is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"task {task_id} not found")
    return task


@router.post(
    "/{task_id}/retry",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=TaskRead,
    responses={404: ERRORS[404], 409: {"description": "Only a failed task can be retried."}},
)
def retry_task(task_id: uuid.UUID, session: SessionDep, request: Request) -> TaskRead:
    """Send a failed task (a dead letter) back to the queue with a fresh set of attempts."""
    task = get_task_or_404(session, task_id)
    if not transitions.mark_requeued(session, task_id):
        raise HTTPException(
            status.HTTP_409_CONFLICT, detail=f"task {task_id} is {task.status}: only a failed task can be retried"
        )
    session.refresh(task)
    try_enqueue(request, task)
    return TaskRead.model_validate(task)


@router.post(
    "/{task_id}/cancel",
    response_model=TaskRead,
    responses={404: ERRORS[404], 409: {"description": "The task has ended already (completed, failed or cancelled)."}},
)
def cancel_task(task_id: uuid.UUID, session: SessionDep, request: Request) -> TaskRead:
    """Cancel a task that has not ended: drop its waiting job, or stop its running attempt."""
    task = get_task_or_404(session, task_id)
    if not transitions.mark_cancelled(session, task_id):
        session.refresh(task)
        raise HTTPException(status.HTTP_409_CONFLICT, detail=f"task {task_id} is {task.status}: it has ended already")
    # Cancelling is a final status reached here, in the API: it is counted here, the moment the
    # compare-and-set has committed (the task's type cannot have changed since it was read).
    request.app.state.metrics.finished.labels(task.task_type, TaskStatus.CANCELLED.value).inc()
    session.refresh(task)
    log.info("task cancelled", task_id=str(task_id), task_type=task.task_type)
    withdraw_job(request, task_id)
    return TaskRead.model_validate(task)


def withdraw_job(request: Request, task_id: uuid.UUID) -> None:
    """Best effort: remove a cancelled task's job, or stop the attempt running it.

    The cancel is already decided in the database; this only saves work. A job that escapes
    (Redis down, a race with a worker dequeuing it) runs, cannot claim a ``cancelled`` task,
    and ends without doing anything.
    """
    connection = request.app.state.redis
    try:
        job = Job.fetch(str(task_id), connection=connection, serializer=JSONSerializer)
        if job.get_status() == JobStatus.STARTED:
            send_stop_job_command(connection, job.id, serializer=JSONSerializer)  # its worker kills the horse
        else:
            job.delete()
    except (NoSuchJobError, InvalidJobOperation):
        pass  # no job (Redis lost it), or it ended between our two reads
    except RedisError as exc:
        log.warning("task cancelled, but its job could not be withdrawn", task_id=str(task_id), error=type(exc).__name__)


monitoring_router = APIRouter(tags=["monitoring"])


@monitoring_router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE: {}}, "description": "Prometheus text format."}},
)
def read_metrics(request: Request) -> Response:
    """Prometheus metrics of this deployment's API (and of any dead process it adopted)."""
    state = request.app.state
    body = render(state.metrics_directories, QueueCollector(state.redis, lambda: queues_of(request)))
    return Response(body, media_type=CONTENT_TYPE)


def create_monitored_app(
    *,
    title: str,
    description: str,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]],
    submit: APIRouter = submit_router,
) -> FastAPI:
    """The shared skeleton with the task routes, metrics, stats and the dashboard, observed.

    ``submit`` serves ``POST /tasks``: phase 4's by default, phase 5's batching one there.
    """
    app = create_base_app(title=title, description=description, lifespan=lifespan)
    app.add_middleware(RequestMonitoringMiddleware)  # outermost: sees every request, 413s included
    app.include_router(submit)
    app.include_router(router)
    app.include_router(readiness_router)
    app.include_router(monitoring_router)
    app.include_router(stats.router)
    app.include_router(dashboard.router)
    return app
