"""Creating and reading task rows: the queries every phase's API shares.

Status changes are not here: they belong to :mod:`shared.transitions`, the one module that
writes ``task.status``.
"""

from __future__ import annotations

import uuid

from sqlalchemy import func
from sqlmodel import Session, col, select

from shared.models import Task, TaskCreate, TaskStatus
from shared.tasks import TaskType

MAX_PAGE_SIZE = 100


def insert_task(session: Session, request: TaskCreate, **columns: object) -> Task:
    """Store a new ``pending`` task and commit, so it exists before anything runs it.

    Every column gets its value in Python (id, status, created_at …), so there is nothing to
    read back: no ``refresh``, and the connection goes back to the pool at the commit instead
    of staying with the request until its session closes. Pass a session made with
    ``expire_on_commit=False`` so the returned object stays readable.
    """
    task = Task.model_validate(request, update=columns)
    session.add(task)
    session.commit()
    return task


def get_task(session: Session, task_id: uuid.UUID) -> Task | None:
    return session.get(Task, task_id)


def get_task_by_idempotency_key(session: Session, key: str) -> Task | None:
    """The task a client created with this ``Idempotency-Key`` header, if any (the column is unique)."""
    return session.exec(select(Task).where(Task.idempotency_key == key)).first()


def list_tasks(
    session: Session,
    *,
    status: TaskStatus | None = None,
    task_type: TaskType | None = None,
    limit: int = 20,
    offset: int = 0,
) -> tuple[list[Task], int]:
    """One page of tasks, newest first, and how many match in all."""
    query = select(Task)
    count = select(func.count()).select_from(Task)
    if status is not None:
        query = query.where(Task.status == status.value)
        count = count.where(Task.status == status.value)  # type: ignore[arg-type]
    if task_type is not None:
        query = query.where(Task.task_type == task_type.value)
        count = count.where(Task.task_type == task_type.value)  # type: ignore[arg-type]
    # id breaks ties between tasks created in the same microsecond, so pages never overlap.
    query = query.order_by(col(Task.created_at).desc(), col(Task.id).desc()).limit(limit).offset(offset)
    return list(session.exec(query).all()), int(session.exec(count).one())
