"""The task state machine: the only module that writes ``task.status``.

Every change is one compare-and-set statement::

    UPDATE task SET status = 'running', … WHERE id = :id AND status IN ('pending', 'retrying')

The database decides, atomically, whether the move is legal *right now*. Two workers that got
the same job, or a cancel racing a completion, cannot both win: the loser's UPDATE matches no
row and the function returns ``False``. No read-then-write, so no lost update, on SQLite or
PostgreSQL alike (and on SQLite the single statement takes the write lock at once, so the busy
timeout applies instead of an immediate ``SQLITE_BUSY``).

    pending ──▶ running ──▶ completed
       │           │ ▲
       │           ▼ │
       │        retrying            (phase 3: waiting for the next attempt)
       │           │
       └──▶ failed / cancelled ◀──┘
    failed ──▶ pending               (phase 3: an operator sends a dead letter back)

*Built once, run many times.* A worker runs two of these statements per task, thousands of
times a second across a pool. Built with the ORM on every call (``update(Task).where(…)``,
then the session's bulk-update machinery, which also re-evaluates the change in Python for
objects it holds), a statement cost about 2 ms of CPU before SQLite saw it: more than the
write. So each distinct statement is built once, from the table and bound parameters, and
run through the session's connection: the same SQL, the same single compare-and-set, the
same commit, at a fraction of the CPU (docs/05-scaling.md has the figures).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from functools import cache
from typing import Any

from sqlalchemy import Table, bindparam, update
from sqlalchemy.sql import ColumnElement
from sqlalchemy.sql.dml import Update
from sqlmodel import Session

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


TASK_TABLE: Table = Task.__table__  # type: ignore[attr-defined]
#: ``attempts + 1``, computed by the database in the same statement: a claim counts the attempt
#: without reading the row first (a read-then-write would race another claim).
NEXT_ATTEMPT: ColumnElement[int] = TASK_TABLE.c.attempts + 1


@cache
def _statement(
    target: TaskStatus, sources: frozenset[TaskStatus], columns: tuple[tuple[str, ColumnElement[Any] | None], ...]
) -> Update:
    """``UPDATE task SET status = target, … WHERE id = :task_id AND status IN (sources)``, built once.

    ``columns`` names the other columns set, each with the SQL expression it takes (like
    :data:`NEXT_ATTEMPT`) or ``None`` for a value passed as a parameter of the same name. The
    cache holds one statement per distinct transition: a handful.
    """
    values: dict[str, Any] = {"status": target.value}
    for name, expression in columns:
        values[name] = expression if expression is not None else bindparam(name, type_=TASK_TABLE.c[name].type)
    return (
        update(TASK_TABLE)
        .where(TASK_TABLE.c.id == bindparam("task_id"), TASK_TABLE.c.status.in_(sorted(s.value for s in sources)))
        .values(values)
    )


def _prepared(
    target: TaskStatus, only_from: Iterable[TaskStatus] | None, changes: dict[str, Any]
) -> tuple[Update, dict[str, Any]]:
    """The cached statement for this transition and the parameters to run it with."""
    allowed = legal_sources(target)
    sources = allowed if only_from is None else frozenset(only_from)
    if not sources <= allowed:
        raise IllegalTransition(f"{sorted(sources - allowed)} → {target} is not a legal transition")
    columns = tuple(sorted((name, value if isinstance(value, ColumnElement) else None) for name, value in changes.items()))
    parameters = {name: value for name, value in changes.items() if not isinstance(value, ColumnElement)}
    return _statement(target, sources, columns), parameters


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

    ``only_from`` narrows the legal sources further (a worker finishing an attempt only
    completes a task that is still ``running``). Asking for a source the machine forbids
    raises :class:`IllegalTransition` instead of silently matching nothing. ``changes`` are
    the other columns to set: values, or SQL expressions over the row (:data:`NEXT_ATTEMPT`).
    """
    statement, parameters = _prepared(target, only_from, changes)
    result = session.connection().execute(statement, {"task_id": task_id, **parameters})
    session.commit()
    return result.rowcount == 1


def claim(session: Session, task_id: uuid.UUID, *, worker: str | None = None) -> Task | None:
    """:func:`mark_running`, returning the claimed row (``RETURNING``) instead of reading it again.

    One statement where a claim and a ``SELECT`` took two: the worker needs the task's type
    and payload to run it, and the database hands back the row it just changed. ``None`` when
    the task was not claimable (already running, finished, cancelled).
    """
    statement, parameters = _prepared(S.RUNNING, None, _running_changes(worker))
    row = session.connection().execute(_returning_row(statement), {"task_id": task_id, **parameters}).one_or_none()
    session.commit()
    return Task(**row._mapping) if row is not None else None


@cache
def _returning_row(statement: Update) -> Update:
    """``statement … RETURNING *``, built once per statement (building it is most of its cost)."""
    return statement.returning(*TASK_TABLE.c)


def _running_changes(worker: str | None) -> dict[str, Any]:
    return {"attempts": NEXT_ATTEMPT, "started_at": utc_now(), "worker": worker, "progress": 0}


def mark_running(session: Session, task_id: uuid.UUID, *, worker: str | None = None) -> bool:
    """Claim a task for one attempt: counts the attempt and stamps who runs it and when."""
    return transition(session, task_id, S.RUNNING, **_running_changes(worker))


def mark_completed(session: Session, task_id: uuid.UUID, result: Any) -> bool:
    """Record a successful attempt; only a task still ``running`` can complete."""
    return transition(
        session,
        task_id,
        S.COMPLETED,
        result=result,
        error=None,
        progress=100,
        completed_at=utc_now(),
    )


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
    statement = _progress_statement()
    result = session.connection().execute(statement, {"task_id": task_id, "progress": max(0, min(100, int(percent)))})
    session.commit()
    return result.rowcount == 1


@cache
def _progress_statement() -> Update:
    return (
        update(TASK_TABLE)
        .where(TASK_TABLE.c.id == bindparam("task_id"), TASK_TABLE.c.status == S.RUNNING.value)
        .values(progress=bindparam("progress"))
    )
