"""The one table every phase shares, and the API schemas built on it.

The model family follows the FastAPI template: ``TaskBase`` holds what a client may send,
``TaskCreate`` validates a request, ``Task`` is the table with every column any phase uses,
``TaskRead`` is what the API returns and ``TaskPage`` is one page of a list. Early phases simply
leave later columns (``worker``, ``progress``, ``idempotency_key``, ``request_id``) at their defaults, so the
schema never forks between phases.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import ValidationError, model_validator
from sqlalchemy import JSON, Column, DateTime, Index, String, Text, TypeDecorator
from sqlmodel import Field, SQLModel

from shared.tasks import CATALOG, TaskType, validate_payload

PRIORITY_LOWEST = 1
PRIORITY_HIGHEST = 5
PRIORITY_DEFAULT = 3

#: ``GET /tasks`` counts the matches exactly up to this many, and says "at least this many"
#: beyond (``TaskPage.total_is_exact`` false). A count reads one index entry per match: at a
#: million matches that is tens of milliseconds on every page, for a number nobody pages through.
MAX_EXACT_TOTAL = 10_000


class TaskStatus(StrEnum):
    """Where a task is in its life; ``shared.transitions`` says which moves are legal."""

    PENDING = "pending"
    RUNNING = "running"
    RETRYING = "retrying"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


def utc_now() -> datetime:
    """Now, timezone-aware: naive datetimes are how off-by-an-hour bugs get in."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware.

    PostgreSQL keeps the zone (``timestamptz``); SQLite has no timestamp type and hands back
    naive values. Normalising on the way in and out gives both stores one behaviour.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("refusing a naive datetime: use shared.models.utc_now()")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class TaskBase(SQLModel):
    """The fields a client chooses."""

    # Stored as plain text, not a database enum: a new task type needs no migration.
    task_type: TaskType = Field(sa_type=String(64), description="One of the task catalog's types.")
    payload: dict[str, Any] = Field(
        default_factory=dict,
        sa_column=Column(JSON, nullable=False),
        description="The task's input; its shape depends on task_type.",
    )
    priority: int = Field(
        default=PRIORITY_DEFAULT,
        ge=PRIORITY_LOWEST,
        le=PRIORITY_HIGHEST,
        description="1 (lowest) … 5 (highest).",
    )


class TaskCreate(TaskBase):
    """The body of ``POST /tasks``: the payload is checked against its task type's model."""

    model_config = {
        "extra": "forbid",
        # One example per task type, from the catalog, so /docs can submit each of them.
        "json_schema_extra": {
            "examples": [{"task_type": t.value, "payload": d.example, "priority": PRIORITY_DEFAULT} for t, d in CATALOG.items()]
        },
    }

    @model_validator(mode="after")
    def payload_matches_task_type(self) -> TaskCreate:
        # Validated here, at the door, so a worker never receives input it cannot run.
        try:
            self.payload = validate_payload(self.task_type, self.payload)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(part) for part in error['loc']) or 'payload'}: {error['msg']}" for error in exc.errors()
            )
            raise ValueError(f"invalid payload for {self.task_type.value}: {problems}") from None
        return self


class Task(TaskBase, table=True):
    """The ``task`` table: the single source of truth for every task's state."""

    __tablename__ = "task"
    __table_args__ = (
        # GET /tasks filters by status, by type, by both or by neither, and reads newest first,
        # (created_at, id) descending. One index per combination, each holding its filter columns
        # and then that order, turns every page into a range read of `limit` index entries, at any
        # depth and any table size: the first page and the ten-thousandth cost the same. They also
        # serve lookups by their leading columns alone (status, task_type, created_at).
        Index("ix_task_created_at_id", "created_at", "id"),
        Index("ix_task_status_created_at_id", "status", "created_at", "id"),
        Index("ix_task_task_type_created_at_id", "task_type", "created_at", "id"),
        Index("ix_task_status_task_type_created_at_id", "status", "task_type", "created_at", "id"),
    )  # fmt: skip

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    status: TaskStatus = Field(default=TaskStatus.PENDING, sa_type=String(16))
    result: Any | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    attempts: int = Field(default=0, ge=0)
    progress: int = Field(default=0, ge=0, le=100)
    worker: str | None = Field(default=None, max_length=255)
    idempotency_key: str | None = Field(default=None, max_length=255, unique=True)
    #: The X-Request-ID of the request that created the task (phase 4 on): every log line about
    #: the task, in the API and in whichever worker runs it, carries it.
    request_id: str | None = Field(default=None, max_length=128)
    created_at: datetime = Field(default_factory=utc_now, sa_column=Column(UTCDateTime, nullable=False))
    started_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime, nullable=True))
    completed_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime, nullable=True))


class TaskRead(TaskBase):
    """A task as the API returns it."""

    id: uuid.UUID
    status: TaskStatus
    result: Any | None = None
    error: str | None = None
    attempts: int
    progress: int
    worker: str | None = None
    request_id: str | None = None
    created_at: datetime
    started_at: datetime | None = None
    completed_at: datetime | None = None


class TaskPage(SQLModel):
    """One page of ``GET /tasks``: newest first, ``total`` counts the matches, ``next_cursor`` continues."""

    items: list[TaskRead]
    total: int = Field(
        description=f"How many tasks match the filters: exact up to {MAX_EXACT_TOTAL:,}; beyond, {MAX_EXACT_TOTAL:,} "
        "with total_is_exact false.",
    )
    total_is_exact: bool = Field(
        default=True,
        description="False when there are more matches than total says (counting them all would be slow).",
    )
    limit: int
    offset: int
    next_cursor: str | None = Field(
        default=None,
        description="Pass as ?cursor= (with the same filters) for the next page; null on the last page.",
    )


TASK_TYPES: tuple[str, ...] = tuple(t.value for t in CATALOG)
