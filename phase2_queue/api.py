"""Phase 2 API: store the task, put its id on an RQ queue, answer 202. A worker does the rest.

The API no longer runs anything, so a slow task cannot tie up its threads, and a task
survives an API restart: it waits in Redis until a worker takes it.

One problem remains, and this file shows it on purpose: *the dual write*. Accepting a task
writes to two systems, the database and Redis, and no transaction spans both. Here the row
is committed first; if the enqueue then fails, the task is marked ``failed`` and the client
gets 503, so nothing is left ``pending`` with no job behind it. Phase 3 fixes it properly.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, HTTPException, Request, Response, status
from redis.exceptions import RedisError

from shared.models import TaskCreate, TaskRead
from shared.settings import load_settings

from . import store, transitions
from .jobs import enqueue_task, make_queue
from .web import ERROR_RESPONSES, SessionDep, create_base_app, queue_lifespan, readiness_router

#: Settings, database, Redis and queue are opened when the server starts, never at import.
lifespan = queue_lifespan(load_settings, make_queue)


router = APIRouter(prefix="/tasks", tags=["tasks"])


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=TaskRead,
    responses={413: ERROR_RESPONSES[413], 503: ERROR_RESPONSES[503]},
)
def create_task(body: TaskCreate, session: SessionDep, request: Request, response: Response) -> TaskRead:
    """Store a task and enqueue it for a worker."""
    task = store.insert_task(session, body)
    try:
        enqueue_task(request.app.state.queue, task.id, request.app.state.settings)
    except RedisError as exc:
        # The row exists but no job does: without this, it would stay `pending` for ever.
        transitions.mark_failed(session, task.id, f"not queued: Redis unreachable ({type(exc).__name__})")
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            detail=f"queue unreachable: task {task.id} was not queued (marked failed); try again later",
        ) from exc
    response.headers["Location"] = f"/tasks/{task.id}"
    return TaskRead.model_validate(task)


def create_app() -> FastAPI:
    app = create_base_app(
        title="tasklab · phase 2 (RQ queue)",
        description="Tasks accepted over HTTP, queued in Redis with RQ and run by separate worker processes.",
        lifespan=lifespan,
    )
    app.include_router(router)
    app.include_router(readiness_router)
    return app


app = create_app()
