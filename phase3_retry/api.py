"""Phase 3 API: the phase 2 contract, with the dual write fixed and operator actions added.

*The dual write.* Accepting a task writes to the database and to Redis, and no transaction
spans both. Phase 2 committed the row, then enqueued, and failed the task with 503 when
Redis was down. Here the row is committed first and the enqueue is only an attempt: if Redis
does not answer, the task is still durable, the client still gets 202, and the reconciler
(:mod:`phase3_retry.reconciler`) enqueues it once Redis is back. The database is the truth;
a job in Redis is a hint that can be lost and rebuilt.

*Idempotent submit.* A client that retries a POST after a timeout cannot know whether the
first one got through. With an ``Idempotency-Key`` header, the same key returns the task the
first request created (200) instead of creating a second one; the same key with a different
body is a client bug (409).

*Operator actions.* ``POST /tasks/{id}/retry`` sends a dead letter back to the queue;
``POST /tasks/{id}/cancel`` stops a task that has not ended.
"""

from __future__ import annotations

import logging
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Header, HTTPException, Request, Response, status
from redis.exceptions import RedisError
from rq.command import send_stop_job_command
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from shared.models import Task, TaskCreate, TaskRead

from . import store, transitions
from .jobs import enqueue_task, make_queue
from .recovery.settings import load_settings
from .web import ERROR_RESPONSES, SessionDep, create_base_app, queue_lifespan, readiness_router

log = logging.getLogger(__name__)

IDEMPOTENCY_KEY_MAX_LENGTH = 255  # the width of the task.idempotency_key column


#: Settings, database, Redis and queue are opened when the server starts, never at import.
lifespan = queue_lifespan(load_settings, make_queue)


def try_enqueue(request: Request, task: Task) -> None:
    """Enqueue a stored task if Redis answers; if not, the reconciler will (the row is the promise)."""
    try:
        enqueue_task(request.app.state.queue, task, request.app.state.settings)
    except RedisError as exc:
        log.warning("task %s stored but not queued (%s); the reconciler will enqueue it", task.id, type(exc).__name__)


ERRORS: dict[int | str, dict[str, Any]] = {
    **ERROR_RESPONSES,
    409: {
        "description": "The request conflicts with the task's state or with an earlier request using the same Idempotency-Key."
    },
}

router = APIRouter(prefix="/tasks", tags=["tasks"])


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


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=TaskRead,
    responses={
        200: {"description": "A task with this Idempotency-Key exists already: here it is, unchanged."},
        409: ERRORS[409],
        413: ERRORS[413],
        503: ERRORS[503],
    },
)
def create_task(
    body: TaskCreate,
    session: SessionDep,
    request: Request,
    response: Response,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            min_length=1,
            max_length=IDEMPOTENCY_KEY_MAX_LENGTH,
            description="Any unique string (a UUID is best). Repeating it returns the first task instead of creating another.",
        ),
    ] = None,
) -> TaskRead:
    """Store a task, then try to enqueue it; 202 either way once it is stored."""
    if idempotency_key is not None and (existing := store.get_task_by_idempotency_key(session, idempotency_key)):
        return replay(existing, body, response)
    try:
        task = store.insert_task(session, body, idempotency_key=idempotency_key)
    except IntegrityError:
        # Two requests with one key raced and the other one committed first: the unique
        # column decided, and this request is the repeat.
        session.rollback()
        existing = store.get_task_by_idempotency_key(session, idempotency_key or "")
        if existing is None:
            raise
        return replay(existing, body, response)
    try_enqueue(request, task)
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
    session.refresh(task)
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
        log.warning("task %s cancelled, but its job could not be withdrawn (%s)", task_id, type(exc).__name__)


def create_app() -> FastAPI:
    app = create_base_app(
        title="tasklab · phase 3 (retries and recovery)",
        description="The phase 2 queue, made trustworthy: retries with backoff, timeouts, dead letters, "
        "crash recovery and a reconciler, so an accepted task always ends.",
        lifespan=lifespan,
    )
    app.include_router(router)
    app.include_router(readiness_router)
    return app


app = create_app()
