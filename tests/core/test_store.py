"""The list query behind ``GET /tasks``, below HTTP, on each phase's own ``store.py``: what a client cannot arrange on purpose.

Tasks created in the same microsecond, and more matches than ``total`` counts exactly, need
rows written directly; everything else about the list is in ``tests/contract/``.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any

import pytest
from sqlalchemy import insert
from sqlalchemy.engine import Engine
from sqlmodel import Session

from shared.models import MAX_EXACT_TOTAL, Task, TaskStatus
from tests.core.phases import phase_module, phase_params

SAME_INSTANT = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(params=phase_params())
def store(request: pytest.FixtureRequest) -> ModuleType:
    """The phase's own ``store`` module."""
    return phase_module(request.param, "store")


def task_rows(
    count: int, *, created_at: datetime | None = None, status: TaskStatus = TaskStatus.COMPLETED
) -> list[dict[str, Any]]:
    """``count`` rows a microsecond apart, or all at ``created_at`` when given."""
    return [
        {
            "id": uuid.uuid4(),
            "task_type": "noop",
            "payload": {},
            "priority": 3,
            "status": status.value,
            "attempts": 1,
            "progress": 100,
            "created_at": created_at or SAME_INSTANT + timedelta(microseconds=n),
        }
        for n in range(count)
    ]


def test_tasks_created_in_the_same_microsecond_page_by_id_without_overlap(empty_store: Engine, store: ModuleType) -> None:
    rows = task_rows(5, created_at=SAME_INSTANT)
    with Session(empty_store) as session:
        session.execute(insert(Task), rows)
        session.commit()

        seen: list[uuid.UUID] = []
        after = None
        while True:
            listing = store.list_tasks(session, limit=2, after=after)
            seen += [task.id for task in listing.items]
            if listing.next_cursor is None:
                break
            after = listing.next_cursor

    assert seen == sorted((row["id"] for row in rows), reverse=True)


def test_a_cursor_survives_its_round_trip_through_text(empty_store: Engine, store: ModuleType) -> None:
    cursor = store.PageCursor(created_at=SAME_INSTANT, task_id=uuid.uuid4())

    assert store.PageCursor.decode(cursor.encode()) == cursor


def test_total_is_exact_up_to_the_bound_and_a_lower_bound_beyond(empty_store: Engine, store: ModuleType) -> None:
    with Session(empty_store) as session:
        session.execute(insert(Task), task_rows(MAX_EXACT_TOTAL, status=TaskStatus.COMPLETED))
        session.execute(insert(Task), task_rows(1, status=TaskStatus.FAILED))
        session.commit()

        completed = store.list_tasks(session, status=TaskStatus.COMPLETED)
        everything = store.list_tasks(session)

    assert (completed.total, completed.total_is_exact) == (MAX_EXACT_TOTAL, True)
    assert (everything.total, everything.total_is_exact) == (MAX_EXACT_TOTAL, False)
