"""Phase 1 API: accept a task, answer 202, run it after the response in the same process.

FastAPI's ``BackgroundTasks`` runs a function once the response has been sent. It is the
smallest step from "do the work in the request" to "answer first, work later", and it shows
what a queue is for by what it lacks: the work lives only in this process's memory. Kill the
server and every accepted task that had not finished stays ``pending`` or ``running`` forever.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, BackgroundTasks, FastAPI, Request, Response, status

from shared.models import TaskCreate, TaskRead
from shared.settings import load_settings

from . import store
from .db import create_db_engine, init_db
from .execution import execute_task
from .web import ERROR_RESPONSES, SessionDep, create_base_app


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Read settings and open the database when the server starts, not when it is imported."""
    settings = load_settings()
    engine = create_db_engine(settings.database_url, busy_timeout_ms=settings.db_busy_timeout_ms)
    init_db(engine)
    app.state.settings = settings
    app.state.engine = engine
    yield
    engine.dispose()


router = APIRouter(prefix="/tasks", tags=["tasks"])


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=TaskRead,
    responses={413: ERROR_RESPONSES[413], 503: ERROR_RESPONSES[503]},
)
def create_task(
    body: TaskCreate, session: SessionDep, background_tasks: BackgroundTasks, request: Request, response: Response
) -> TaskRead:
    """Store a task and run it in this process after the response is sent."""
    task = store.insert_task(session, body)
    # Runs in this server's thread pool after the 202 is sent. Nothing else remembers it: if
    # the process dies first, the task stays `pending` or `running` for ever (README, "Limits").
    background_tasks.add_task(
        execute_task,
        request.app.state.engine,
        task.id,
        time_scale=request.app.state.settings.task_time_scale,
        worker=f"phase1-api-{os.getpid()}",
    )
    response.headers["Location"] = f"/tasks/{task.id}"
    return TaskRead.model_validate(task)


def create_app() -> FastAPI:
    app = create_base_app(
        title="tasklab · phase 1 (BackgroundTasks)",
        description="Tasks accepted over HTTP and run in the API process after the response.",
        lifespan=lifespan,
    )
    app.include_router(router)
    return app


app = create_app()
