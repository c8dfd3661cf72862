"""Running one task to its end, the way phases 1 and 2 do: one attempt, no retry.

The steps are the same wherever the work runs (a FastAPI background task in phase 1, an RQ
work horse in phase 2), so they are written once::

    claim it (pending → running)  ─▶  run the handler  ─▶  completed with the result
                                                      └─▶  failed with the error text

Claiming is a compare-and-set (:func:`shared.transitions.mark_running`): if the task is no
longer ``pending`` (cancelled, or already taken by someone else), nothing runs.
"""

from __future__ import annotations

import uuid

from sqlalchemy.engine import Engine
from sqlmodel import Session

from shared import transitions
from shared.models import Task, TaskStatus
from shared.tasks import TaskContext, run_task


def describe_error(exc: BaseException) -> str:
    """The text stored in ``task.error``: the exception's type and message."""
    return f"{type(exc).__name__}: {exc}"


def execute_task(engine: Engine, task_id: uuid.UUID, *, time_scale: float, worker: str | None = None) -> TaskStatus | None:
    """Run one attempt of a task and record how it ended.

    Returns the status the task ended in, or ``None`` when the task could not be claimed.
    """
    with Session(engine, expire_on_commit=False) as session:
        if not transitions.mark_running(session, task_id, worker=worker):
            return None
        task = session.get(Task, task_id)
        assert task is not None  # we just claimed it
        context = TaskContext(
            attempt=task.attempts,
            time_scale=time_scale,
            report_progress=lambda percent: transitions.record_progress(session, task_id, percent),
        )
        try:
            result = run_task(task.task_type, task.payload, context)
        except Exception as exc:  # any failure of the handler is the task's failure, not ours
            transitions.mark_failed(session, task_id, describe_error(exc))
            return TaskStatus.FAILED
        transitions.mark_completed(session, task_id, result)
        return TaskStatus.COMPLETED
