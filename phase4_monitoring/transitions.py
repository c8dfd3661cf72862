"""The task state machine: the only module that writes ``task.status``.

Every change is one compare-and-set statement::

    UPDATE task SET status = 'running', … WHERE id = :id AND status IN ('pending', 'retrying')

The database decides, atomically, whether the move is legal *right now*. Two workers that got
the same job, or a cancel racing a completion, cannot both win: the loser's UPDATE matches no
row and the function returns ``False``. No read-then-write, so no lost update, on SQLite or PostgreSQL alike (and on SQLite
the single statement takes the write lock at once, so the busy timeout applies instead of an
immediate ``SQLITE_BUSY``).

    pending ──▶ running ──▶ completed
       │           │ ▲
       │           ▼ │
       │        retrying            (waiting for the next attempt)
       │           │
       └──▶ failed / cancelled ◀──┘
    failed ──▶ pending               (an operator sends a dead letter back)
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from sqlmodel import Session, col, update

from shared.models import Task, TaskStatus, utc_now

S = TaskStatus

#: For each status, the statuses a task may move to from it. Everything else is refused.
ALLOWED_TRANSITIONS: dict[TaskStatus, frozenset[TaskStatus]] = {
    S.PENDING: frozenset({S.RUNNING, S.FAILED, S.CANCELLED}),
    S.RUNNING: frozenset({S.COMPLETED, S.FAILED, S.RETRYING, S.CANCELLED}),
    S.RETRYING: frozenset({S.RUNNING, S.FAILED, S.CANCELLED}),
    S.FAILED: frozenset({S.PENDING}),
    S.COMPLETED: frozenset(),
    S.CANCELLED: frozenset(),
}

TERMINAL_STATUSES: frozenset[TaskStatus] = frozenset({S.COMPLETED, S.FAILED, S.CANCELLED})


class IllegalTransition(ValueError):
    """A caller asked for a move the state machine never allows (a programming error)."""


def legal_sources(target: TaskStatus) -> frozenset[TaskStatus]:
    """The statuses from which ``target`` may be reached."""
    return frozenset(source for source, targets in ALLOWED_TRANSITIONS.items() if target in targets)


def transition(
    session: Session,
    task_id: uuid.UUID,
    target: TaskStatus,
    *,
    only_from: Iterable[TaskStatus] | None = None,
    **changes: Any,
) -> bool:
    """Move a task to ``target`` if its current status allows it; return whether it moved.

    ``only_from`` narrows the legal sources further. Asking for a source the machine forbids
    raises :class:`IllegalTransition` instead of silently matching nothing. ``changes`` are the
    other columns to set: values, or SQL expressions over the row (``Task.attempts + 1``).
    """
    allowed = legal_sources(target)
    sources = allowed if only_from is None else frozenset(only_from)
    if not sources <= allowed:
        raise IllegalTransition(f"{sorted(sources - allowed)} → {target} is not a legal transition")
    statement = (
        update(Task)
        .where(col(Task.id) == task_id, col(Task.status).in_(sorted(s.value for s in sources)))
        .values(status=target.value, **changes)
    )
    result = session.exec(statement)
    session.commit()
    return result.rowcount == 1


def claim(session: Session, task_id: uuid.UUID, *, worker: str | None = None) -> Task | None:
    """Claim a task (:func:`mark_running`) and return the row to run, or ``None`` if it was not claimable."""
    if not mark_running(session, task_id, worker=worker):
        return None
    return session.get(Task, task_id, populate_existing=True)


def mark_running(session: Session, task_id: uuid.UUID, *, worker: str | None = None) -> bool:
    """Claim a task for one attempt: counts the attempt and stamps who runs it and when."""
    return transition(
        session, task_id, S.RUNNING, attempts=col(Task.attempts) + 1, started_at=utc_now(), worker=worker, progress=0
    )


def mark_completed(session: Session, task_id: uuid.UUID, result: Any) -> bool:
    """Record a successful attempt; only a task still ``running`` can complete."""
    return transition(session, task_id, S.COMPLETED, result=result, error=None, progress=100, completed_at=utc_now())


def mark_failed(session: Session, task_id: uuid.UUID, error: str, *, only_from: Iterable[TaskStatus] | None = None) -> bool:
    """Record a final failure with the error text that explains it (``only_from`` narrows the sources)."""
    return transition(session, task_id, S.FAILED, only_from=only_from, error=error, completed_at=utc_now())


def mark_retrying(session: Session, task_id: uuid.UUID, error: str) -> bool:
    """An attempt failed and another one is planned: keep the error, free the task."""
    return transition(session, task_id, S.RETRYING, only_from=[S.RUNNING], error=error)


def mark_requeued(session: Session, task_id: uuid.UUID) -> bool:
    """Send a ``failed`` task (a dead letter) back to ``pending`` for a fresh run.

    The new run gets a full budget of attempts, so ``attempts`` starts again from 0; the last
    error stays visible until the next attempt replaces or clears it.
    """
    return transition(
        session,
        task_id,
        S.PENDING,
        attempts=0,
        result=None,
        progress=0,
        worker=None,
        started_at=None,
        completed_at=None,
    )


def mark_cancelled(session: Session, task_id: uuid.UUID, *, reason: str = "cancelled by request") -> bool:
    """Stop a task for good, whatever non-final state it is in."""
    return transition(session, task_id, S.CANCELLED, error=reason, completed_at=utc_now())


def record_progress(session: Session, task_id: uuid.UUID, percent: int) -> bool:
    """Store progress (0–100) of a running task; not a transition, so the status is unchanged."""
    statement = (
        update(Task)
        .where(col(Task.id) == task_id, col(Task.status) == S.RUNNING.value)
        .values(progress=max(0, min(100, int(percent))))
    )
    result = session.exec(statement)
    session.commit()
    return result.rowcount == 1
