"""A task table of a million rows in seconds, for the benchmarks that measure queries.

Inserting through the API, or even row by row through the ORM, would take many minutes for a
million tasks. The seed writes plain rows in bulk instead (SQLite: one ``executemany`` in one
transaction; PostgreSQL: ``COPY``), with the indexes dropped during the load and built once at
the end, which is several times faster than maintaining them row by row.

The rows are what a busy system accumulates: created a few seconds apart over weeks, every task
type alike, mostly ``completed`` with some ``failed`` (a handful of distinct errors) and a few
still in flight. A fixed random seed makes every run seed the same table. Values go through the
column types' own bind processors, so the stored format (SQLite's text timestamps and hex
UUIDs) is exactly what the application writes.

By default the history is fixed in time (it starts on 2026-01-01; a million rows span about a
month) and the status mix is :data:`STATUS_MIX`: part (c) seeds that. A caller may instead give
the history's ``span`` and ``end`` (the rows are then spread evenly over ``[end − span, end)``,
each at a random instant of its own slot, whatever their number) and its own status mix: part
(d) seeds the last day or week up to the wall clock with :data:`REALISTIC_STATUS_MIX`.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Index, event, text
from sqlalchemy.engine import Connection, Engine
from sqlmodel import SQLModel

from phase5_scaling.db import create_db_engine, init_db
from shared.models import Task, TaskStatus
from shared.tasks import TaskType

#: The oldest seeded task; the others follow it a few seconds apart.
SEED_START = datetime(2026, 1, 1, tzinfo=UTC)
#: Mean gap between two seeded tasks: a million rows span about a month.
MEAN_GAP_SECONDS = 2.5
#: A status mix: each status and its share of the seeded rows.
StatusMix = tuple[tuple[TaskStatus, float], ...]
#: Share of each status among the seeded rows (the rest of a real table's life: mostly done).
STATUS_MIX: StatusMix = (
    (TaskStatus.COMPLETED, 0.90),
    (TaskStatus.FAILED, 0.05),
    (TaskStatus.PENDING, 0.02),
    (TaskStatus.RUNNING, 0.01),
    (TaskStatus.RETRYING, 0.01),
    (TaskStatus.CANCELLED, 0.01),
)
#: The realistic table for ``/stats``: 80 % completed, 10 % failed, 5 % pending, 3 % running, 2 % retrying.
REALISTIC_STATUS_MIX: StatusMix = (
    (TaskStatus.COMPLETED, 0.80),
    (TaskStatus.FAILED, 0.10),
    (TaskStatus.PENDING, 0.05),
    (TaskStatus.RUNNING, 0.03),
    (TaskStatus.RETRYING, 0.02),
)
#: What failed tasks say: a few messages, the way real failures cluster.
SEED_ERRORS = (
    "TransientTaskError: upstream timed out",
    "PermanentTaskError: invalid input",
    "JobTimeoutException: task exceeded maximum timeout value (600 seconds)",
    "worker crashed mid-attempt (work horse killed)",
)
SEED_WORKERS = tuple(f"seed-worker-{n}" for n in range(1, 5))
#: Rows generated and written per round trip: large enough to amortise it, small enough to
#: keep the Python lists short.
BATCH_ROWS = 20_000
RANDOM_SEED = 20260101


def seeded_rows(
    count: int,
    *,
    rng_seed: int = RANDOM_SEED,
    span: timedelta | None = None,
    end: datetime | None = None,
    status_mix: StatusMix = STATUS_MIX,
) -> Iterator[dict[str, Any]]:
    """``count`` task rows as column → Python value, oldest first, the same for a given seed.

    Without ``span`` the rows start at :data:`SEED_START`, a random gap of
    :data:`MEAN_GAP_SECONDS` on average apart. With it, they are created over
    ``[end − span, end)`` (``end``: now, by default): each row at a random instant of its own
    equal slot, so any number of rows covers the whole span evenly, in order.
    """
    if span is None and end is not None:
        raise ValueError("end needs a span")
    if span is not None and span <= timedelta(0):
        raise ValueError(f"span must be positive, got {span}")
    rng = random.Random(rng_seed)
    statuses = [status for status, _ in status_mix]
    weights = [share for _, share in status_mix]
    task_types = list(TaskType)
    created_at = SEED_START
    first, slot_us = SEED_START, 0.0
    if span is not None:
        first = (end or datetime.now(UTC)) - span
        slot_us = span / timedelta(microseconds=1) / max(count, 1)
    for index in range(count):
        if span is None:
            # At least one microsecond apart, as a real clock would stamp tasks one by one.
            created_at += timedelta(microseconds=1 + int(rng.expovariate(1 / MEAN_GAP_SECONDS) * 1_000_000))
        else:
            slotted = first + timedelta(microseconds=int((index + rng.random()) * slot_us))
            created_at = max(slotted, created_at + timedelta(microseconds=1)) if index else slotted
        status = rng.choices(statuses, weights)[0]
        started = status not in (TaskStatus.PENDING,)
        started_at = created_at + timedelta(milliseconds=rng.randint(1, 2_000)) if started else None
        finished = status in (TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED)
        completed_at = started_at + timedelta(milliseconds=rng.randint(1, 5_000)) if finished and started_at else None
        yield {
            "id": uuid.UUID(int=rng.getrandbits(128), version=4),
            "task_type": rng.choice(task_types).value,
            "payload": {},
            "priority": rng.randint(1, 5),
            "status": status.value,
            "result": None,
            "error": rng.choice(SEED_ERRORS) if status == TaskStatus.FAILED else None,
            "attempts": 0 if status == TaskStatus.PENDING else rng.randint(1, 3),
            "progress": 100 if status == TaskStatus.COMPLETED else 0,
            "worker": rng.choice(SEED_WORKERS) if started else None,
            "created_at": created_at,
            "started_at": started_at,
            "completed_at": completed_at,
        }


def _row_encoder(connection: Connection) -> tuple[list[str], Any]:
    """The table's columns and a function turning a row dict into DB-API values, as SQLAlchemy would."""
    dialect = connection.dialect
    columns = list(Task.__table__.columns)  # type: ignore[attr-defined]
    processors = [column.type._cached_bind_processor(dialect) for column in columns]
    names = [column.name for column in columns]

    def encode(row: dict[str, Any]) -> tuple[Any, ...]:
        values = []
        for name, process in zip(names, processors, strict=True):
            value = row.get(name)
            values.append(process(value) if process is not None and value is not None else value)
        return tuple(values)

    return names, encode


def _batches(rows: Iterator[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _load_sqlite(connection: Connection, rows: Iterator[dict[str, Any]]) -> None:
    names, encode = _row_encoder(connection)
    statement = f"INSERT INTO task ({', '.join(names)}) VALUES ({', '.join('?' for _ in names)})"
    dbapi = connection.connection.dbapi_connection
    assert dbapi is not None
    cursor = dbapi.cursor()
    for batch in _batches(rows, BATCH_ROWS):
        cursor.executemany(statement, [encode(row) for row in batch])
    cursor.close()


def _load_postgresql(connection: Connection, rows: Iterator[dict[str, Any]]) -> None:
    names, encode = _row_encoder(connection)
    dbapi = connection.connection.dbapi_connection
    assert dbapi is not None
    with dbapi.cursor() as cursor, cursor.copy(f"COPY task ({', '.join(names)}) FROM STDIN") as copy:  # type: ignore[attr-defined]
        for row in rows:
            copy.write_row(encode(row))


def _counted(rows: Iterator[dict[str, Any]], on_rows: Callable[[int], None] | None) -> Iterator[dict[str, Any]]:
    """``rows`` as they are, telling ``on_rows`` how many went by, every :data:`BATCH_ROWS` and at the end."""
    if on_rows is None:
        yield from rows
        return
    passed = 0
    for row in rows:
        yield row
        passed += 1
        if passed == BATCH_ROWS:
            on_rows(passed)
            passed = 0
    if passed:
        on_rows(passed)


def seed_tasks(
    engine: Engine,
    count: int,
    *,
    rng_seed: int = RANDOM_SEED,
    span: timedelta | None = None,
    end: datetime | None = None,
    status_mix: StatusMix = STATUS_MIX,
    on_rows: Callable[[int], None] | None = None,
) -> None:
    """Replace the task table behind ``engine`` with ``count`` seeded rows and every index built.

    Drops the table first (its triggers go with it): point this only at a database made for the
    benchmark. ``span``, ``end`` and ``status_mix`` are :func:`seeded_rows`'; ``on_rows`` hears
    how many rows were loaded, batch by batch.
    """
    SQLModel.metadata.drop_all(engine, tables=[Task.__table__])  # type: ignore[attr-defined]
    init_db(engine)
    indexes: list[Index] = sorted(Task.__table__.indexes, key=lambda index: str(index.name))  # type: ignore[attr-defined]
    with engine.begin() as connection:
        for index in indexes:
            index.drop(connection)
        rows = _counted(seeded_rows(count, rng_seed=rng_seed, span=span, end=end, status_mix=status_mix), on_rows)
        if connection.dialect.name == "sqlite":
            _load_sqlite(connection, rows)
        else:
            _load_postgresql(connection, rows)
        for index in indexes:
            index.create(connection)
    if engine.dialect.name == "postgresql":
        # What autovacuum does to any table a while after a bulk load: statistics for the
        # planner, and the visibility map that lets a count read the index alone.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("VACUUM ANALYZE task"))


@contextmanager
def scratch_engine(backend: str, *, sqlite_path: Path, postgres_url: str | None, schema: str, keep: bool) -> Iterator[Engine]:
    """The application's engine on a database that belongs to one benchmark, removed after it.

    SQLite: a fresh file. PostgreSQL: a schema of its own on the given server (never ``public``),
    dropped at the end unless ``keep``.
    """
    if backend == "sqlite":
        engine = create_db_engine(f"sqlite:///{sqlite_path}")
        try:
            yield engine
        finally:
            engine.dispose()
        return
    if postgres_url is None:
        raise ValueError("a PostgreSQL run needs a server URL")
    engine = create_db_engine(postgres_url)
    with engine.begin() as connection:
        connection.execute(text(f"CREATE SCHEMA IF NOT EXISTS {schema}"))

    # Every connection of this engine resolves "task" to the benchmark's schema, never public.
    @event.listens_for(engine, "connect")
    def _use_bench_schema(dbapi_connection: Any, _record: Any) -> None:
        with dbapi_connection.cursor() as cursor:
            cursor.execute(f"SET search_path TO {schema}")
        dbapi_connection.commit()

    engine.dispose()  # drop the connection opened before the listener existed
    try:
        yield engine
    finally:
        if not keep:
            with engine.begin() as connection:
                connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        engine.dispose()
