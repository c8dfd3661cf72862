"""Creating and reading task rows: the queries every phase's API shares.

Status changes are not here: they belong to :mod:`transitions`, the one module that
writes ``task.status``.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, func, literal, tuple_
from sqlmodel import Session, col, select

from shared.models import MAX_EXACT_TOTAL, Task, TaskCreate, TaskStatus
from shared.tasks import TaskType

MAX_PAGE_SIZE = 100

#: The deepest ``offset`` the list accepts. Skipping rows is not free: the database reads every
#: skipped row and throws it away, so ``?offset=500000`` costs half a million reads for one
#: page of twenty. Past this depth, clients page with the cursor, which costs the same at any depth.
MAX_OFFSET = 10_000

#: Longest cursor accepted; a real one (a timestamp and a UUID in base64) is about 90 characters.
MAX_CURSOR_LENGTH = 200

_CURSOR_SEPARATOR = "|"


def insert_task(session: Session, request: TaskCreate, **columns: object) -> Task:
    """Store a new ``pending`` task and commit, so it exists before anything runs it.

    Every column gets its value in Python (id, status, created_at …) when the ``Task`` is built,
    so the object the caller gets back already says everything the response needs.
    """
    task = Task.model_validate(request, update=columns)
    session.add(task)
    session.commit()
    session.refresh(task)
    return task


def get_task(session: Session, task_id: uuid.UUID) -> Task | None:
    return session.get(Task, task_id)


class InvalidCursor(ValueError):
    """A ``cursor`` that no page of this API produced (edited, truncated or from elsewhere)."""


@dataclass(frozen=True)
class PageCursor:
    """Where the next page starts: just after the task with this ``created_at`` and ``id``.

    The list is ordered by ``(created_at, id)``, newest first, and a page continues with the
    tasks strictly older than the last one shown. That position does not move when tasks are
    added: new tasks are newer, so they can only appear before the first page, never shift
    the pages a client is reading (an offset would, by one row per insert).

    Clients see it as an opaque string (URL-safe base64), so the format can change without
    breaking them; they only hand back what a page gave them.
    """

    created_at: datetime
    task_id: uuid.UUID

    @classmethod
    def after(cls, task: Task) -> PageCursor:
        return cls(created_at=task.created_at, task_id=task.id)

    def encode(self) -> str:
        raw = f"{self.created_at.isoformat()}{_CURSOR_SEPARATOR}{self.task_id}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> PageCursor:
        """Parse a cursor; :class:`InvalidCursor` says why it is not one (the API answers 422)."""
        if len(token) > MAX_CURSOR_LENGTH:
            raise InvalidCursor(f"cursor longer than {MAX_CURSOR_LENGTH} characters")
        try:
            # validate=True refuses characters outside the alphabet instead of skipping them.
            raw = base64.b64decode(token + "=" * (-len(token) % 4), altchars=b"-_", validate=True).decode()
            created_text, _, id_text = raw.partition(_CURSOR_SEPARATOR)
            created_at = datetime.fromisoformat(created_text)
            task_id = uuid.UUID(id_text)
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise InvalidCursor("cursor is not one this API produced: pass a page's next_cursor unchanged") from None
        if created_at.tzinfo is None:
            raise InvalidCursor("cursor is not one this API produced: its timestamp has no time zone")
        return cls(created_at=created_at, task_id=task_id)


@dataclass(frozen=True)
class TaskListing:
    """What :func:`list_tasks` found: one page, how many match, and where the next page starts."""

    items: list[Task]
    total: int
    total_is_exact: bool
    next_cursor: PageCursor | None


def list_tasks(
    session: Session,
    *,
    status: TaskStatus | None = None,
    task_type: TaskType | None = None,
    limit: int = 20,
    offset: int = 0,
    after: PageCursor | None = None,
) -> TaskListing:
    """One page of tasks, newest first, how many match in all, and the cursor of the next page.

    Each filter combination has an index that starts with its equality columns and ends with
    ``(created_at, id)`` (see ``Task.__table_args__``), so the page is read straight off the
    index: ``limit`` entries from the cursor's position, whatever the table's size or the depth.
    """
    filters: list[ColumnElement[bool]] = []
    if status is not None:
        filters.append(col(Task.status) == status.value)
    if task_type is not None:
        filters.append(col(Task.task_type) == task_type.value)

    query = select(Task).where(*filters)
    if after is not None:
        # A row-value comparison: "older than the cursor", ties on created_at broken by id. Both
        # databases turn it into a range on the index, so a deep page costs what the first does.
        query = query.where(tuple_(col(Task.created_at), col(Task.id)) < tuple_(after.created_at, after.task_id))
    # id breaks ties between tasks created in the same microsecond, so pages never overlap.
    query = query.order_by(col(Task.created_at).desc(), col(Task.id).desc()).offset(offset)
    # One row more than the page: if it exists, there is a next page, and no extra query asks.
    rows = list(session.exec(query.limit(limit + 1)).all())
    items = rows[:limit]
    next_cursor = PageCursor.after(items[-1]) if len(rows) > limit else None

    # Count at most MAX_EXACT_TOTAL + 1 matches: enough to know whether the count is exact.
    matches = select(literal(1)).select_from(Task).where(*filters).limit(MAX_EXACT_TOTAL + 1).subquery()
    counted = int(session.exec(select(func.count()).select_from(matches)).one())
    return TaskListing(
        items=items,
        total=min(counted, MAX_EXACT_TOTAL),
        total_is_exact=counted <= MAX_EXACT_TOTAL,
        next_cursor=next_cursor,
    )
