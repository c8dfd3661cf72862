"""``POST /tasks`` in phase 5: submits that arrive together are stored and queued together.

Phase 4 gives every submit its own database transaction and its own Redis transaction, run in
FastAPI's thread pool. Under load the CPU goes to what surrounds the work: handing the request
to a thread and back, opening a session, committing, a round trip to Redis. Sixteen clients
submitting at once pay all of it sixteen times.

Here the route is ``async`` and hands its task to a :class:`SubmitBatcher`. While one batch is
being written (one ``INSERT`` of all its rows, one commit, one ``MULTI … EXEC`` enqueuing all
its jobs, in one trip to a worker thread), the submits that arrive wait for the next batch;
when it is done, the next batch takes all of them. A lone submit is written at once, alone:
nothing waits for a timer. This is a database's *group commit*, done by the API.

The promise is phase 4's: the answer is 202 only once the row is committed (a crash after it
loses nothing), and the job is queued then too, or the reconciler queues it. A batch that fails
to commit fails every submit in it, each with the error it would have had alone (503 when the
database is down). A submit with an ``Idempotency-Key`` takes phase 4's path, one at a time:
the key's check and the insert belong in one transaction of their own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Generic, NamedTuple, TypeVar

from anyio import to_thread
from fastapi import APIRouter, Request, Response, status
from redis.exceptions import RedisError
from sqlalchemy.engine import Engine
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from shared.models import Task, TaskCreate, TaskRead

from .. import store
from ..monitoring import api as monitored
from ..monitoring.logs import get_logger

log = get_logger(__name__)

#: Enqueues stored tasks, all in one Redis transaction.
EnqueueTasks = Callable[[Sequence[Task | TaskRead]], None]
#: What a batcher collects: a submit's task, in whatever form its write takes.
Submitted = TypeVar("Submitted")


class NewTask(NamedTuple):
    """One submit's task: its row for the ``INSERT``, and the same task as the API answers it
    (and as the queue reads it). Never a ``Task``: see :func:`store.new_row`."""

    row: dict[str, Any]
    task: TaskRead


def write_batch(engine: Engine, tasks: list[NewTask], enqueue_tasks: EnqueueTasks) -> None:
    """Store the rows (one commit), then queue their jobs (one round trip). Runs in a worker thread.

    Redis not answering is not the submit's failure: the rows are the promise, and the
    reconciler queues any stored task that has no job.
    """
    with Session(engine) as session:
        store.insert_rows(session, [new.row for new in tasks])
    try:
        enqueue_tasks([new.task for new in tasks])
    except RedisError as exc:
        log.warning("tasks stored but not queued; the reconciler will enqueue them", tasks=len(tasks), error=type(exc).__name__)


class SubmitBatcher(Generic[Submitted]):
    """Collects submits while a batch is being written, and writes them as the next batch."""

    def __init__(self, write: Callable[[list[Submitted]], None], max_batch_size: int) -> None:
        """``max_batch_size`` bounds one transaction (``SUBMIT_BATCH_MAX``); more submits wait for the next."""
        self._write = write
        self._max_batch_size = max_batch_size
        self._waiting: list[tuple[Submitted, asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def submit(self, task: Submitted) -> None:
        """Return once ``task`` is committed; raise what its batch's write raised."""
        stored = asyncio.get_running_loop().create_future()
        self._waiting.append((task, stored))
        if self._writer is None:  # nothing is being written: this submit starts the writing
            self._writer = asyncio.create_task(self._write_until_empty())
        # Shielded: a client that hangs up does not take its task out of a batch being written.
        await asyncio.shield(stored)

    async def _write_until_empty(self) -> None:
        try:
            while self._waiting:
                batch = self._waiting[: self._max_batch_size]
                del self._waiting[: self._max_batch_size]
                try:
                    await to_thread.run_sync(self._write, [task for task, _ in batch])
                except Exception as exc:  # every submit of the batch answers with the error
                    for _, stored in batch:
                        stored.set_exception(exc)
                else:
                    for _, stored in batch:
                        stored.set_result(None)
        finally:
            self._writer = None

    async def drain(self) -> None:
        """Wait until every submit already handed in is written (the server is stopping)."""
        while self._writer is not None:
            await asyncio.shield(self._writer)


router = APIRouter(prefix="/tasks", tags=["tasks"])


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=TaskRead,
    responses=monitored.SUBMIT_RESPONSES,
)
async def create_task(
    body: TaskCreate,
    request: Request,
    response: Response,
    idempotency_key: Annotated[str | None, monitored.IDEMPOTENCY_KEY_HEADER] = None,
) -> TaskRead:
    """Store a task, then try to enqueue it; 202 either way once it is stored."""
    batcher: SubmitBatcher[NewTask] | None = getattr(request.app.state, "submits", None)
    if idempotency_key is not None or batcher is None:  # no batcher: an app served without its lifespan
        return await run_in_threadpool(submit_once, body, request, response, idempotency_key)
    row = store.new_row(body, request_id=request.state.request_id)
    task = TaskRead.model_validate(row)
    await batcher.submit(NewTask(row, task))
    return monitored.accepted(request, response, task)


def submit_once(body: TaskCreate, request: Request, response: Response, idempotency_key: str | None) -> TaskRead:
    """Phase 4's submit, in its own session: the Idempotency-Key's check and the insert together."""
    with Session(request.app.state.engine, expire_on_commit=False) as session:
        return monitored.create_task(body, session, request, response, idempotency_key)
