"""The figures of ``GET /stats``, kept up to date as tasks change, so reading them costs the same at any size.

Counting a million rows each time the dashboard refreshes makes the operator page slowest
exactly when the system is busiest. So the database keeps the figures itself, in three steps:

1. **Capture, in the same transaction.** Triggers on ``task`` (SQLite and PostgreSQL alike)
   append one row to ``task_stats_event`` for every insert, status change and delete, with the
   row's status before and after and what the figures need (type, priority, timestamps, error).
   Whatever writes the row (the API, a worker, the reconciler, ``manage_db clear``, a worker
   killed right after its commit) is captured, exactly once, or not at all if it rolls back.
   The cost on the write path is one small ``INSERT``.
2. **Fold, off the write path.** :func:`fold` moves those events into the aggregates and deletes
   them: ``task_status_count`` (tasks per status now) and, for each task that reached a final
   status, rows per *period* (a minute, ten minutes, an hour, six hours and a day) of ``task_outcome_rollup`` (how many
   ended, by type, priority and outcome), ``task_latency_rollup`` (run and wait times as
   histograms, one row each, by type and by priority) and ``task_error_rollup`` (failures by error
   text). A task sent back from ``failed`` to ``pending`` takes its contribution back out, so
   the windowed figures always describe the rows as they are. The API folds every few seconds
   and before each computation; several processes may fold at once.
3. **Read a window as periods.** A window of any length is covered by at most about 50
   periods (whole days in the middle, then six hours, hours, ten minutes and minutes at the
   edges), each a few rows per type: the read does not grow with the tasks in the window.

Exact and approximate. Counts are exact: status counts are the folded counts plus the events
not folded yet; windowed counts are exact for the window rounded to whole minutes. Percentiles
come from the buckets: each bucket spans a factor of :data:`BUCKET_GROWTH`, and a percentile is
interpolated between the geometric middles of the buckets of its two nearest ranks, so it is
within :data:`RELATIVE_ERROR` of the exact value (or within half a millisecond, below 1 ms).

History, not the table. The windowed figures are history, like a Prometheus counter: deleting
old rows (``manage_db clear``) does not take them back. The status counts are the rows that
exist now: a delete lowers them.
"""

from __future__ import annotations

import math
import sys
from array import array
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from operator import add
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    and_,
    bindparam,
    delete,
    func,
    or_,
    select,
    text,
)
from sqlalchemy.engine import Engine

from shared.models import Task, TaskStatus, UTCDateTime

#: The aggregates' own tables, apart from the ``task`` table's metadata: they belong to the phases
#: that teach them (4 on), and each phase's copy of this module declares them for itself.
METADATA = MetaData()

#: The statuses a task ends in.
FINAL_STATUSES: frozenset[str] = frozenset(s.value for s in (TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED))
#: Error texts are grouped by their first characters: a traceback is not a label.
ERROR_KEY_CHARS = 300

#: Histogram buckets: bucket 0 holds durations under :data:`BUCKET_FLOOR_SECONDS`, bucket ``b``
#: the durations in ``[floor·g^(b-1), floor·g^b)``. 10 % wide: tasks run from milliseconds to
#: minutes, and about 150 buckets cover a millisecond to an hour.
BUCKET_FLOOR_SECONDS = 0.001
BUCKET_GROWTH = 1.1
#: A bucket's geometric middle is at most this far (relatively) from any value in the bucket.
RELATIVE_ERROR = math.sqrt(BUCKET_GROWTH) - 1
#: Buckets per histogram: the last one (``0.001 · 1.1^174`` s, about 4 h 20 min) takes everything longer.
BUCKETS = 176
LAST_BUCKET = BUCKETS - 1

#: Period lengths, longest first: a window is covered by whole days, then six hours, hours, ten
#: minutes and minutes at its edges: at most about 50 periods, whatever its length.
MINUTE, TEN_MINUTES, HOUR, SIX_HOURS, DAY = 60, 600, 3600, 21600, 86400
RESOLUTIONS: tuple[int, ...] = (DAY, SIX_HOURS, HOUR, TEN_MINUTES, MINUTE)
#: Periods older than this are never read (the longest window is 7 days) and are deleted.
RETENTION = timedelta(days=8)
#: Events folded per transaction: a backlog is worked off in steps that never hold the lock long.
FOLD_BATCH = 20_000

TRIGGER_NAME = "task_stats_capture"

event_table = Table(
    "task_stats_event",
    METADATA,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("old_status", String(16)),
    Column("new_status", String(16)),
    Column("task_type", String(64), nullable=False),
    Column("priority", SmallInteger, nullable=False),
    Column("created_at", UTCDateTime),
    Column("old_started_at", UTCDateTime),
    Column("old_completed_at", UTCDateTime),
    Column("new_started_at", UTCDateTime),
    Column("new_completed_at", UTCDateTime),
    Column("old_error", Text),
    Column("new_error", Text),
)
status_count_table = Table(
    "task_status_count",
    METADATA,
    Column("status", String(16), primary_key=True),
    Column("n", BigInteger, nullable=False),
)
outcome_table = Table(
    "task_outcome_rollup",
    METADATA,
    Column("resolution", Integer, primary_key=True),
    Column("period_start", UTCDateTime, primary_key=True),
    Column("task_type", String(64), primary_key=True),
    Column("priority", SmallInteger, primary_key=True),
    Column("outcome", String(16), primary_key=True),
    Column("n", BigInteger, nullable=False),
)
latency_table = Table(
    "task_latency_rollup",
    METADATA,
    Column("resolution", Integer, primary_key=True),
    Column("period_start", UTCDateTime, primary_key=True),
    # ``type`` rows hold a task type's run and wait times; ``priority`` rows a level's wait times.
    Column("dimension", String(8), primary_key=True),
    Column("key", String(64), primary_key=True),
    Column("measure", String(4), primary_key=True),
    # The whole histogram in one row: BUCKETS counts, 8 bytes each (see pack_histogram). A
    # window then reads one row per histogram and period, not one per bucket.
    Column("counts", LargeBinary, nullable=False),
)
error_table = Table(
    "task_error_rollup",
    METADATA,
    Column("resolution", Integer, primary_key=True),
    Column("period_start", UTCDateTime, primary_key=True),
    Column("error", String(ERROR_KEY_CHARS), primary_key=True),
    Column("n", BigInteger, nullable=False),
    Column("last_seen", UTCDateTime),
)

# ----------------------------------------------------------------------------------------------
# Capture: the triggers

_COLUMNS = (
    "old_status, new_status, task_type, priority, created_at, old_started_at, old_completed_at,"
    " new_started_at, new_completed_at, old_error, new_error"
)
_INSERTED = (
    "NULL, NEW.status, NEW.task_type, NEW.priority, NEW.created_at, NULL, NULL, NEW.started_at, NEW.completed_at, NULL, NEW.error"
)
_UPDATED = (
    "OLD.status, NEW.status, NEW.task_type, NEW.priority, NEW.created_at, OLD.started_at, OLD.completed_at,"
    " NEW.started_at, NEW.completed_at, OLD.error, NEW.error"
)
_DELETED = (
    "OLD.status, NULL, OLD.task_type, OLD.priority, OLD.created_at, OLD.started_at, OLD.completed_at, NULL, NULL, OLD.error, NULL"
)
#: Only a change the figures see makes an event: progress and heartbeats do not.
_CHANGED = "OLD.status IS DISTINCT FROM NEW.status OR OLD.completed_at IS DISTINCT FROM NEW.completed_at"

SQLITE_TRIGGERS: tuple[str, ...] = (
    f"CREATE TRIGGER {TRIGGER_NAME}_insert AFTER INSERT ON task BEGIN"
    f" INSERT INTO task_stats_event ({_COLUMNS}) VALUES ({_INSERTED}); END",
    f"CREATE TRIGGER {TRIGGER_NAME}_update AFTER UPDATE OF status, completed_at ON task"
    f" WHEN {_CHANGED.replace('IS DISTINCT FROM', 'IS NOT')} BEGIN"
    f" INSERT INTO task_stats_event ({_COLUMNS}) VALUES ({_UPDATED}); END",
    f"CREATE TRIGGER {TRIGGER_NAME}_delete AFTER DELETE ON task BEGIN"
    f" INSERT INTO task_stats_event ({_COLUMNS}) VALUES ({_DELETED}); END",
)
POSTGRESQL_TRIGGERS: tuple[str, ...] = (
    f"""CREATE OR REPLACE FUNCTION {TRIGGER_NAME}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO task_stats_event ({_COLUMNS}) VALUES ({_INSERTED});
    ELSIF TG_OP = 'UPDATE' THEN
        IF {_CHANGED} THEN
            INSERT INTO task_stats_event ({_COLUMNS}) VALUES ({_UPDATED});
        END IF;
    ELSE
        INSERT INTO task_stats_event ({_COLUMNS}) VALUES ({_DELETED});
    END IF;
    RETURN NULL;
END $$""",
    f"CREATE OR REPLACE TRIGGER {TRIGGER_NAME} AFTER INSERT OR UPDATE OR DELETE ON task"
    f" FOR EACH ROW EXECUTE FUNCTION {TRIGGER_NAME}()",
)


def triggers_present(connection: Connection) -> bool:
    """Whether ``task`` carries the capture triggers (a table dropped and made again has none)."""
    if connection.dialect.name == "postgresql":
        found = connection.execute(
            text("SELECT count(*) FROM pg_trigger WHERE tgname = :name AND tgrelid = to_regclass('task')"),
            {"name": TRIGGER_NAME},
        ).scalar_one()
        return bool(found)
    found = connection.execute(
        text("SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'task' AND name LIKE :prefix"),
        {"prefix": f"{TRIGGER_NAME}%"},
    ).scalar_one()
    return int(found) == len(SQLITE_TRIGGERS)


def install(engine: Engine, progress: Callable[[int, int], None] | None = None) -> bool:
    """Create the aggregates and their triggers where they are missing; return whether it had to.

    Safe from several processes at once, and cheap when everything is there. When the triggers
    are missing (a new store, an upgrade, a ``task`` table made again), the aggregates cannot
    be trusted, so they are rebuilt from the table in the same transaction, writers held off
    meanwhile; ``progress(done, total)`` hears about it, row by row in batches.
    """
    with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            connection.begin()
            connection.execute(text("SELECT pg_advisory_xact_lock(7261002)"))
        else:
            connection.exec_driver_sql("BEGIN IMMEDIATE")  # the write lock first: writers wait
        try:
            if triggers_present(connection):
                return False
            METADATA.create_all(connection)
            if connection.dialect.name == "postgresql":
                connection.execute(text("LOCK TABLE task IN SHARE ROW EXCLUSIVE MODE"))  # no writes while we copy
                for statement in POSTGRESQL_TRIGGERS:
                    connection.exec_driver_sql(statement)
            else:
                for statement in SQLITE_TRIGGERS:
                    connection.exec_driver_sql(statement)
            rebuild(connection, progress)
        except BaseException:
            _rollback(connection)
            raise
        _commit(connection)
        return True


def _commit(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.commit()
    else:
        connection.exec_driver_sql("COMMIT")


def _rollback(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.rollback()
    else:
        connection.exec_driver_sql("ROLLBACK")


REBUILD_BATCH = 20_000


def rebuild(connection: Connection, progress: Callable[[int, int], None] | None = None) -> None:
    """Make every aggregate describe the ``task`` table as it is: forget them, then fold each row once."""
    for table in (event_table, status_count_table, outcome_table, latency_table, error_table):
        connection.execute(delete(table))
    task = Task.__table__  # type: ignore[attr-defined]
    total = connection.execute(select(func.count()).select_from(task)).scalar_one()
    done = 0
    if progress:
        progress(done, total)
    columns = [
        task.c.status,
        task.c.task_type,
        task.c.priority,
        task.c.created_at,
        task.c.started_at,
        task.c.completed_at,
        task.c.error,
    ]
    # yield_per on the statement, not the connection: the writes after it must not go through a server-side cursor.
    result = connection.execute(select(*columns).execution_options(yield_per=REBUILD_BATCH))
    # One set of changes for the whole table, written once: every aggregate row is new, so
    # nothing is read back, and each row is written once instead of once per batch.
    changes = Changes()
    for rows in result.partitions():
        for row in rows:
            changes.add_row(*row, sign=1)
        done += len(rows)
        if progress:
            progress(done, total)
    changes.write(connection, fresh=True)
    prune(connection, datetime.now(UTC))


# ----------------------------------------------------------------------------------------------
# Fold: events into aggregates


def bucket_of(seconds: float) -> int:
    """The histogram bucket of a duration (negative ones, from clocks apart, count as zero)."""
    if seconds < BUCKET_FLOOR_SECONDS:
        return 0
    return min(LAST_BUCKET, 1 + int(math.log(seconds / BUCKET_FLOOR_SECONDS) / math.log(BUCKET_GROWTH)))


def bucket_value(bucket: int) -> float:
    """The value a bucket stands for: its geometric middle (half the floor for bucket 0)."""
    if bucket <= 0:
        return BUCKET_FLOOR_SECONDS / 2
    return BUCKET_FLOOR_SECONDS * BUCKET_GROWTH ** (bucket - 1) * math.sqrt(BUCKET_GROWTH)


def period_start(moment: datetime, resolution: int) -> datetime:
    """The start of the minute, hour or day ``moment`` falls in (UTC)."""
    seconds = int(moment.timestamp())
    return datetime.fromtimestamp(seconds - seconds % resolution, tz=UTC)


@dataclass
class Changes:
    """What a batch of events adds to (or takes from) each aggregate row, before it is written."""

    statuses: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    outcomes: dict[tuple[Any, ...], int] = field(default_factory=lambda: defaultdict(int))
    latencies: dict[tuple[Any, ...], list[int]] = field(default_factory=dict)
    errors: dict[tuple[Any, ...], int] = field(default_factory=lambda: defaultdict(int))
    last_seen: dict[tuple[Any, ...], datetime] = field(default_factory=dict)

    def add_row(
        self,
        status: str | None,
        task_type: str,
        priority: int,
        created_at: datetime | None,
        started_at: datetime | None,
        completed_at: datetime | None,
        error: str | None,
        *,
        sign: int,
    ) -> None:
        """Count (``sign`` 1) or uncount (−1) one row as it was: its status, and its end if it ended."""
        if status is None:
            return
        self.statuses[status] += sign
        if status not in FINAL_STATUSES or completed_at is None:
            return
        ended = int(completed_at.timestamp())
        latencies: list[tuple[str, str, str, int]] = []
        if status == TaskStatus.COMPLETED.value and started_at is not None and created_at is not None:
            run = bucket_of((completed_at - started_at).total_seconds())
            wait = bucket_of((started_at - created_at).total_seconds())
            latencies = [
                ("type", task_type, "run", run),
                ("type", task_type, "wait", wait),
                ("priority", str(priority), "wait", wait),
            ]
        error_key = (error or "(no error text)")[:ERROR_KEY_CHARS] if status == TaskStatus.FAILED.value else None
        for resolution in RESOLUTIONS:
            period = ended - ended % resolution  # periods are kept as epoch seconds until written
            self.outcomes[(resolution, period, task_type, priority, status)] += sign
            if error_key is not None:
                key = (resolution, period, error_key)
                self.errors[key] += sign
                if sign > 0 and (key not in self.last_seen or self.last_seen[key] < completed_at):
                    self.last_seen[key] = completed_at
            for dimension, name, measure, bucket in latencies:
                histogram = self.latencies.get((resolution, period, dimension, name, measure))
                if histogram is None:
                    histogram = self.latencies[(resolution, period, dimension, name, measure)] = [0] * BUCKETS
                histogram[bucket] += sign

    def add_event(self, event: Any) -> None:
        """One captured change: the row before it leaves the figures, the row after it enters them."""
        ended_before = event.old_status in FINAL_STATUSES
        if event.new_status is None:  # a delete: the row is gone, its history stays
            self.statuses[event.old_status] -= 1
            return
        if event.old_status is not None:
            if ended_before:
                self.add_row(
                    event.old_status, event.task_type, event.priority, event.created_at,
                    event.old_started_at, event.old_completed_at, event.old_error, sign=-1,
                )  # fmt: skip
            else:
                self.statuses[event.old_status] -= 1
        self.add_row(
            event.new_status, event.task_type, event.priority, event.created_at,
            event.new_started_at, event.new_completed_at, event.new_error, sign=1,
        )  # fmt: skip

    def write(self, connection: Connection, *, fresh: bool = False) -> None:
        """Add every change to its row (creating rows as needed), in as few statements as the rows allow.

        ``fresh``: the aggregates are empty (a rebuild), so there is nothing to read back first.
        """
        upsert = _upsert_for(connection)
        if self.statuses:
            rows = [{"status": s, "n": n} for s, n in self.statuses.items() if n]
            upsert(connection, status_count_table, rows, ["status"])
        names = ["resolution", "period_start", "task_type", "priority", "outcome"]
        rows = [dict(zip(names, as_period(key), strict=True), n=n) for key, n in self.outcomes.items() if n]
        upsert(connection, outcome_table, rows, names)
        self._write_histograms(connection, fresh=fresh)
        names = ["resolution", "period_start", "error"]
        rows = [
            dict(zip(names, as_period(key), strict=True), n=n, last_seen=self.last_seen.get(key))
            for key, n in self.errors.items()
            if n
        ]
        upsert(connection, error_table, rows, names)

    def _write_histograms(self, connection: Connection, *, fresh: bool) -> None:
        """Add each histogram's bucket changes to its stored row: read the rows, add, write them back.

        The fold holds the write lock (or the events' row locks), so no other fold changes these
        rows between the read and the write.
        """
        changed = {as_period(key): deltas for key, deltas in self.latencies.items() if any(deltas)}
        if not changed:
            return
        stored = {} if fresh else read_histograms(connection, list(changed))
        updated: list[dict[str, Any]] = []
        created: list[dict[str, Any]] = []
        for key, deltas in changed.items():
            counts = pack_histogram(list(map(add, stored.get(key, [0] * BUCKETS), deltas)))
            row = {**dict(zip(HISTOGRAM_KEY, key, strict=True)), "counts": counts}
            (updated if key in stored else created).append(row)
        if updated:
            by_key = (latency_table.c[name] == bindparam(f"key_{name}") for name in HISTOGRAM_KEY)
            statement = latency_table.update().where(*by_key).values(counts=bindparam("new_counts"))
            parameters = [{**{f"key_{n}": row[n] for n in HISTOGRAM_KEY}, "new_counts": row["counts"]} for row in updated]
            connection.execute(statement, parameters)
        if created:
            connection.execute(latency_table.insert(), created)


_PERIOD_STARTS: dict[int, datetime] = {}


def as_period(key: tuple[Any, ...]) -> tuple[Any, ...]:
    """``key`` with its period (epoch seconds, second item) as the UTC datetime the tables store."""
    seconds = key[1]
    moment = _PERIOD_STARTS.get(seconds)
    if moment is None:
        if len(_PERIOD_STARTS) > 100_000:
            _PERIOD_STARTS.clear()
        moment = _PERIOD_STARTS[seconds] = datetime.fromtimestamp(seconds, tz=UTC)
    return (key[0], moment, *key[2:])


#: What identifies one stored histogram.
HISTOGRAM_KEY = ("resolution", "period_start", "dimension", "key", "measure")


def read_histograms(connection: Connection, keys: list[tuple[Any, ...]]) -> dict[tuple[Any, ...], list[int]]:
    """The stored histograms of these keys (those that exist): every histogram of their periods, kept if wanted."""
    wanted = set(keys)
    periods = sorted({(key[0], key[1]) for key in keys})
    stored: dict[tuple[Any, ...], list[int]] = {}
    columns = [latency_table.c[name] for name in HISTOGRAM_KEY]
    for start in range(0, len(periods), 100):
        chosen = [
            and_(latency_table.c.resolution == size, latency_table.c.period_start == first)
            for size, first in periods[start : start + 100]
        ]
        for *key, counts in connection.execute(select(*columns, latency_table.c.counts).where(or_(*chosen))):
            if tuple(key) in wanted:
                stored[tuple(key)] = unpack_histogram(counts)
    return stored


def pack_histogram(counts: Sequence[int]) -> bytes:
    """BUCKETS counts as 8-byte little-endian integers: the same bytes on every machine."""
    packed = array("q", counts)
    if sys.byteorder == "big":
        packed.byteswap()
    return packed.tobytes()


def unpack_histogram(data: bytes) -> list[int]:
    unpacked = array("q")
    unpacked.frombytes(data)
    if sys.byteorder == "big":
        unpacked.byteswap()
    return unpacked.tolist()


Upsert = Callable[[Connection, Table, list[dict[str, Any]], list[str]], None]


def _upsert_for(connection: Connection) -> Upsert:
    dialect = connection.dialect.name
    # Imported for the store in use only: a SQLite pool process never loads PostgreSQL's dialect.
    insert: Callable[[Table], Any]
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as insert_on_postgresql

        insert = insert_on_postgresql
    else:
        from sqlalchemy.dialects.sqlite import insert as insert_on_sqlite

        insert = insert_on_sqlite
    latest = func.greatest if dialect == "postgresql" else func.max

    def upsert(connection: Connection, table: Table, rows: list[dict[str, Any]], keys: list[str]) -> None:
        if not rows:
            return
        statement = insert(table)
        changes: dict[str, Any] = {"n": table.c.n + statement.excluded.n}
        if "last_seen" in table.c:
            # max(NULL, x) is NULL in SQLite: a row's first failure sets the time, later ones raise it.
            changes["last_seen"] = func.coalesce(
                latest(table.c.last_seen, statement.excluded.last_seen), statement.excluded.last_seen
            )
        for start in range(0, len(rows), 500):
            connection.execute(statement.on_conflict_do_update(index_elements=keys, set_=changes), rows[start : start + 500])

    return upsert


def fold(engine: Engine, *, now: datetime | None = None) -> int:
    """Move the captured events into the aggregates, batch by batch; return how many were folded.

    Each batch is one transaction: the events are claimed (PostgreSQL: ``FOR UPDATE SKIP
    LOCKED``, so two folders never take the same event; SQLite: the write lock), added to the
    aggregates and deleted together, so an event is folded once or, on a crash, not at all.
    """
    folded = 0
    while True:
        with engine.connect() as connection:
            postgres = connection.dialect.name == "postgresql"
            if postgres:
                connection.begin()
            else:
                connection.exec_driver_sql("BEGIN IMMEDIATE")
            try:
                claim = select(event_table).order_by(event_table.c.id).limit(FOLD_BATCH)
                if postgres:
                    claim = claim.with_for_update(skip_locked=True)
                events = connection.execute(claim).all()
                if events:
                    changes = Changes()
                    for event in events:
                        changes.add_event(event)
                    changes.write(connection)
                    # PostgreSQL: the claimed rows only (another folder may hold the ones between them).
                    # SQLite: under the write lock the batch is every event up to its last id.
                    claimed = [e.id for e in events]
                    done = event_table.c.id.in_(claimed) if postgres else event_table.c.id <= claimed[-1]
                    connection.execute(delete(event_table).where(done))
                    if not postgres or len(events) < FOLD_BATCH:
                        prune(connection, now or datetime.now(UTC))
            except BaseException:
                _rollback(connection)
                raise
            _commit(connection)
        folded += len(events)
        if len(events) < FOLD_BATCH:
            return folded


def prune(connection: Connection, now: datetime) -> None:
    """Drop the periods no window reaches any more, and rows a correction brought back to zero."""
    oldest = now - RETENTION
    for table in (outcome_table, error_table):
        connection.execute(delete(table).where(or_(table.c.period_start < oldest, table.c.n == 0)))
    connection.execute(delete(latency_table).where(latency_table.c.period_start < oldest))


# ----------------------------------------------------------------------------------------------
# Read: a window as periods


def covering_periods(start: datetime, end: datetime) -> list[tuple[int, datetime, datetime]]:
    """``[start, end)`` (minute-aligned start) as ranges of whole periods: ``(resolution, first, last)``.

    Days where a whole day fits, hours where a whole hour fits, minutes at the edges; ``end`` is
    rounded up to the next minute, so the current minute counts.
    """
    end = period_start(end, MINUTE) + timedelta(seconds=MINUTE)
    ranges: list[tuple[int, datetime, datetime]] = []

    def cover(lo: datetime, hi: datetime, levels: Sequence[int]) -> None:
        if lo >= hi:
            return
        size, finer = levels[0], levels[1:]
        first = lo if period_start(lo, size) == lo else period_start(lo, size) + timedelta(seconds=size)
        last = period_start(hi, size)
        if not finer:
            ranges.append((size, lo, hi))
            return
        if first >= last:
            cover(lo, hi, finer)
            return
        cover(lo, first, finer)
        ranges.append((size, first, last))
        cover(last, hi, finer)

    cover(start, end, RESOLUTIONS)
    return ranges


def in_periods(table: Table, ranges: Iterable[tuple[int, datetime, datetime]]) -> Any:
    """The rows of ``table`` for these period ranges."""
    return or_(
        *(
            and_(table.c.resolution == size, table.c.period_start >= first, table.c.period_start < last)
            for size, first, last in ranges
        )
    )


def status_counts(connection: Connection) -> dict[str, int]:
    """Tasks per status now: the folded counts plus the events not folded yet, in one statement."""
    delta = (
        select(event_table.c.new_status.label("status"), func.count().label("n"))
        .where(event_table.c.new_status.is_not(None))
        .group_by(event_table.c.new_status)
        .union_all(
            select(event_table.c.old_status, -func.count())
            .where(event_table.c.old_status.is_not(None))
            .group_by(event_table.c.old_status),
            select(status_count_table.c.status, status_count_table.c.n),
        )
        .subquery()
    )
    rows = connection.execute(select(delta.c.status, func.sum(delta.c.n)).group_by(delta.c.status)).all()
    return {status: int(n) for status, n in rows}


def percentile_from_buckets(counts: dict[int, int], fraction: float) -> float | None:
    """``percentile_cont`` over the values the buckets stand for: the two nearest ranks, interpolated."""
    total = sum(counts.values())
    if total == 0:
        return None
    position = fraction * (total - 1)
    lower_rank, weight = math.floor(position), position - math.floor(position)
    lower = upper = None
    seen = 0
    for bucket in sorted(counts):
        seen += counts[bucket]
        if lower is None and seen > lower_rank:
            lower = bucket_value(bucket)
        if seen > lower_rank + (1 if weight else 0):
            upper = bucket_value(bucket)
            break
    assert lower is not None and upper is not None
    return lower + (upper - lower) * weight


@dataclass
class WindowFigures:
    """The aggregates of one window, summed over its periods: what ``/stats`` turns into its answer."""

    #: ``(task_type, outcome)`` → tasks.
    outcomes: dict[tuple[str, str], int]
    #: priority → completed tasks.
    completed_by_priority: dict[int, int]
    #: ``(task_type, measure)`` → bucket → completed tasks; measure is ``run`` or ``wait``.
    type_buckets: dict[tuple[str, str], dict[int, int]]
    #: priority → wait bucket → completed tasks.
    priority_buckets: dict[int, dict[int, int]]


def window_figures(connection: Connection, start: datetime, end: datetime) -> WindowFigures:
    """Sum the periods that cover ``[start, end)``: three grouped reads of small tables."""
    ranges = covering_periods(start, end)
    outcomes: dict[tuple[str, str], int] = {}
    completed_by_priority: dict[int, int] = defaultdict(int)
    statement = (
        select(outcome_table.c.task_type, outcome_table.c.priority, outcome_table.c.outcome, func.sum(outcome_table.c.n))
        .where(in_periods(outcome_table, ranges))
        .group_by(outcome_table.c.task_type, outcome_table.c.priority, outcome_table.c.outcome)
    )
    for task_type, priority, outcome, n in connection.execute(statement):
        outcomes[(task_type, outcome)] = outcomes.get((task_type, outcome), 0) + int(n)
        if outcome == TaskStatus.COMPLETED.value:
            completed_by_priority[int(priority)] += int(n)
    sums: dict[tuple[str, str, str], list[int]] = {}
    table = latency_table
    statement = select(table.c.dimension, table.c.key, table.c.measure, table.c.counts).where(in_periods(table, ranges))
    for dimension, key, measure, counts in connection.execute(statement):
        histogram = unpack_histogram(counts)
        total = sums.get((dimension, key, measure))
        sums[(dimension, key, measure)] = histogram if total is None else list(map(add, total, histogram))
    type_buckets: dict[tuple[str, str], dict[int, int]] = {}
    priority_buckets: dict[int, dict[int, int]] = {}
    for (dimension, key, measure), histogram in sums.items():
        buckets = {bucket: n for bucket, n in enumerate(histogram) if n}
        if not buckets:
            continue
        if dimension == "type":
            type_buckets[(key, measure)] = buckets
        else:
            priority_buckets[int(key)] = buckets
    return WindowFigures(outcomes, dict(completed_by_priority), type_buckets, priority_buckets)


def per_minute(connection: Connection, first: datetime, minutes: int) -> dict[tuple[datetime, str], int]:
    """Tasks that completed or failed in each of ``minutes`` minutes from ``first``: ``(minute, outcome)`` → n."""
    table = outcome_table
    statement = (
        select(table.c.period_start, table.c.outcome, func.sum(table.c.n))
        .where(
            table.c.resolution == MINUTE,
            table.c.period_start >= first,
            table.c.period_start < first + timedelta(minutes=minutes),
            table.c.outcome.in_([TaskStatus.COMPLETED.value, TaskStatus.FAILED.value]),
        )
        .group_by(table.c.period_start, table.c.outcome)
    )
    return {(minute, outcome): int(n) for minute, outcome, n in connection.execute(statement)}


def top_errors(connection: Connection, start: datetime, end: datetime, limit: int) -> list[tuple[str, int, datetime | None]]:
    """The most frequent error texts of the window: ``(text, count, last seen)``, most frequent first."""
    table = error_table
    n = func.sum(table.c.n).label("n")
    last_seen = func.max(table.c.last_seen).label("last_seen")
    statement = (
        select(table.c.error, n, last_seen)
        .where(in_periods(table, covering_periods(start, end)))
        .group_by(table.c.error)
        .having(func.sum(table.c.n) > 0)
        .order_by(n.desc(), last_seen.desc())
        .limit(limit)
    )
    return [(error, int(count), seen) for error, count, seen in connection.execute(statement)]
