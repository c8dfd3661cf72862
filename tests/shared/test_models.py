"""The shared schema: timestamps come back timezone-aware UTC from every store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from phase5_scaling import store
from shared.models import Task, TaskCreate
from shared.tasks import TaskType


def test_timestamps_round_trip_as_aware_utc(empty_store: Engine) -> None:
    paris = timezone(timedelta(hours=1))
    with Session(empty_store) as session:
        task = store.insert_task(
            session, TaskCreate(task_type=TaskType.NOOP, payload={}), started_at=datetime(2026, 1, 1, 13, 0, tzinfo=paris)
        )
        task_id = task.id
    with Session(empty_store) as session:
        loaded = session.get(Task, task_id)
        assert loaded is not None
        assert loaded.created_at.tzinfo is not None
        assert loaded.started_at == datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def test_naive_datetimes_are_refused(empty_store: Engine) -> None:
    with Session(empty_store) as session, pytest.raises(Exception, match="naive datetime"):
        store.insert_task(session, TaskCreate(task_type=TaskType.NOOP, payload={}), started_at=datetime(2026, 1, 1))
