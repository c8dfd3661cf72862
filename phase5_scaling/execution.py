"""Running one task to its end, the way phases 1 and 2 do: one attempt, no retry.

The steps are the same wherever the work runs (a FastAPI background task in phase 1, an RQ
work horse in phase 2), so they are written once::

    claim it (pending → running)  ─▶  run the handler  ─▶  completed with the result
                                                      └─▶  failed with the error text

Claiming is a compare-and-set (:func:`transitions.mark_running`): if the task is no
longer ``pending`` (cancelled, or already taken by someone else), nothing runs.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session

from shared.models import Task, TaskStatus
from shared.tasks import TaskContext, run_task

from . import transitions


def describe_error(exc: BaseException) -> str:
    """The text stored in ``task.error``: the exception's type and message."""
    return f"{type(exc).__name__}: {exc}"


def claim_task(engine: Engine, task_id: uuid.UUID, *, worker: str | None) -> Task | None:
    """Move a task from ``pending`` to ``running`` and return it, or ``None`` if it was not pending."""
    with Session(engine, expire_on_commit=False) as session:
        return transitions.claim(session, task_id, worker=worker)


def record(engine: Engine, change: Callable[..., bool], task_id: uuid.UUID, *args: Any) -> bool:
    """Apply one state change in its own short session.

    Each write borrows a pooled connection for one statement and gives it back. A session
    kept open across the handler would hold a connection (and, on PostgreSQL, an idle open
    transaction) for the whole run of the task: with enough slow tasks, the pool runs dry.
    """
    with Session(engine) as session:
        return change(session, task_id, *args)


def execute_task(engine: Engine, task_id: uuid.UUID, *, time_scale: float, worker: str | None = None) -> TaskStatus | None:
    """Run one attempt of a task and record how it ended.

    Returns the status the task ended in, or ``None`` when the task could not be claimed.
    """
    task = claim_task(engine, task_id, worker=worker)
    if task is None:
        return None
    context = TaskContext(
        attempt=task.attempts,
        time_scale=time_scale,
        report_progress=lambda percent: record(engine, transitions.record_progress, task_id, percent),
    )
    try:
        result = run_task(task.task_type, task.payload, context)
    except Exception as exc:  # any failure of the handler is the task's failure, not ours
        record(engine, transitions.mark_failed, task_id, describe_error(exc))
        return TaskStatus.FAILED
    record(engine, transitions.mark_completed, task_id, result)
    return TaskStatus.COMPLETED


def compile_job_statements(engine: Engine) -> None:
    """Run every statement a job runs once, against an id no task has.

    Nothing matches, so nothing changes; but SQLAlchemy compiles each statement and keeps it
    in the engine's cache. A worker calls this before it starts forking work horses, which then
    inherit the compiled statements instead of compiling them again for every job (about two
    thirds of a no-op job's time when measured).
    """
    nobody = uuid.uuid4()
    claim_task(engine, nobody, worker=None)
    record(engine, transitions.record_progress, nobody, 0)
    record(engine, transitions.mark_failed, nobody, "")
    record(engine, transitions.mark_completed, nobody, None)
