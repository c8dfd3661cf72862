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
from typing import Any

from pydantic_core import PydanticUndefined
from sqlalchemy import ColumnElement, Table, func, insert, literal, tuple_
from sqlalchemy.sql.dml import Insert
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


TASK_TABLE: Table = Task.__table__  # type: ignore[attr-defined]
#: ``INSERT INTO task (every column) VALUES (…)``, built once: the API runs it for every POST.
INSERT_TASK: Insert = insert(TASK_TABLE)


def insert_task(session: Session, request: TaskCreate, **columns: object) -> Task:
    """Store a new ``pending`` task and commit, so it exists before anything runs it.

    Every column gets its value in Python (id, status, created_at …), so there is nothing to
    read back: no ``refresh``, and the connection goes back to the pool at the commit instead
    of staying with the request until its session closes.

    The row is written with one prepared ``INSERT``, not ``session.add()``: the ORM's unit of
    work (track the object, flush, expire it after the commit) cost more CPU than the insert
    itself, on the path every submitted task takes. The returned ``Task`` is a plain object,
    readable after the commit.
    """
    task = new_task(request, **columns)
    insert_tasks(session, [task])
    return task


def new_task(request: TaskCreate, **columns: object) -> Task:
    """The ``pending`` row a request describes, every column filled in Python, not yet stored."""
    return Task.model_validate(request, update=columns)


#: A new row's column values that are constants, and those made per row (id, created_at …),
#: read once from the model, which stays their one definition.
_ROW_CONSTANTS: dict[str, Any] = {
    name: field.default
    for name, field in Task.model_fields.items()
    if field.default_factory is None and field.default is not PydanticUndefined
}
_ROW_FACTORIES = [(name, field.default_factory) for name, field in Task.model_fields.items() if field.default_factory is not None]


def new_row(request: TaskCreate, **columns: object) -> dict[str, Any]:
    """What :func:`new_task` builds, as the ``INSERT``'s parameters instead of a ``Task``.

    For the hottest path (phase 5's batched submit): a table model's construction goes through
    SQLAlchemy's instrumentation and validates the already validated request again, about
    0.17 ms a task, more than its share of the ``INSERT``. The dict costs about 0.01 ms.
    """
    row = dict(_ROW_CONSTANTS)
    row.update((name, factory()) for name, factory in _ROW_FACTORIES)  # type: ignore[call-arg]
    row.update(request.model_dump(), **columns)
    return row


def insert_rows(session: Session, rows: list[dict[str, Any]]) -> None:
    """Store rows with one prepared ``INSERT`` (one per row, sent as a batch when there are
    several) and one commit."""
    session.connection().execute(INSERT_TASK, rows if len(rows) > 1 else rows[0])
    session.commit()


def insert_tasks(session: Session, tasks: list[Task]) -> None:
    """Store rows built by :func:`new_task`: :func:`insert_rows` of their column values."""
    insert_rows(session, [{column.name: getattr(task, column.name) for column in TASK_TABLE.c} for task in tasks])


def get_task(session: Session, task_id: uuid.UUID) -> Task | None:
    return session.get(Task, task_id)


def get_task_by_idempotency_key(session: Session, key: str) -> Task | None:
    """The task a client created with this ``Idempotency-Key`` header, if any (the column is unique)."""
    return session.exec(select(Task).where(Task.idempotency_key == key)).first()


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
