"""``GET /stats``: what the system is doing right now, how fast, and what is failing.

Prometheus (``GET /metrics``) answers these questions over time, for machines; ``/stats`` answers
them *now*, in one JSON document a person, a script or the dashboard can read, straight from
the two places that know: the task table (counts, outcomes, latencies, errors) and Redis (queue
depths, live workers).

The figures, and the query behind each one:

* **counts by status**, over the whole table;
* **per task type, over a window** (``?window=``, one hour by default): tasks that *ended* in the
  window, completed / failed / cancelled, the failure rate, and p50 / p95 / p99 of the run time
  (started → completed) and of the queue wait (created → started) of the completed ones;
* **per priority, over the same window**: how many tasks of each level completed and how long
  they waited (created → started), so a reader sees the levels served in order, none starved;
* **throughput**: tasks completed and failed in each minute of the last hour;
* **top errors**: the most frequent error texts of the tasks that failed in the window;
* **queues and workers**, from Redis: jobs waiting per queue, workers alive.

*Fast at a million rows.* A busy system keeps millions of rows, and an endpoint polled every two
seconds must not read them all each time. Two ideas keep every query proportional to what it
reports, not to the table (``bench/stats_query.py`` measures it at 1,000,000 rows):

1. The window figures are range reads of one index, ``ix_task_status_completed_at_stats`` in
   :mod:`shared.models`: ``(status, completed_at)`` leads, so "failed tasks that ended since T" is
   one contiguous slice, and the columns after (type, start, creation) make it *covering*: the
   database never visits the table itself. It is a partial index (only ended tasks), so a task's
   busy life before it ends never has to update it.
2. Counting a status means visiting each of its index entries: the 900,000 ``completed`` rows of
   a million-row table cost 35–45 ms, a good part of the budget. Counting the *whole table* is
   cheaper (SQLite adds up the cells of each b-tree page without decoding a row, ~8 ms;
   PostgreSQL scans its smallest index, ~30 ms), and the other statuses are small in a healthy
   table. So ``completed`` is computed: everything minus the rest, in one statement, so that
   all the counts see the same moment. (In a backlog ``pending`` is large, and counting it costs
   what it costs; nothing but a counter maintained on every write would avoid that.)

Percentiles are exact, over every row of the window: PostgreSQL computes them where the data is,
with its ordered-set aggregate ``percentile_cont``; SQLite has none, so the durations come back and
Python interpolates them the same way. The cost grows with the window's rows, which is why the
window has an upper bound.

*Redis down is a fact to report, not an error.* The database figures are still true; the
Redis-backed ones say ``reachable: false`` and why. ``/stats`` answers 200 either way.
"""

from __future__ import annotations

import math
import re
import time
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field
from redis.exceptions import RedisError
from rq import Queue, Worker
from rq.serializers import JSONSerializer
from sqlalchemy import Float, func, select, type_coerce
from sqlalchemy.dialects.postgresql import ARRAY, array
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col

from shared.models import PRIORITY_HIGHEST, PRIORITY_LOWEST, Task, TaskStatus, utc_now
from shared.tasks import CATALOG

from ..web import SessionDep

# ----------------------------------------------------------------------------------------------
# What the figures cover

#: The window a request gets without ``?window=``: the last hour, what an operator looks at first.
DEFAULT_WINDOW_SECONDS = 3600
#: Shorter windows hold too few tasks for a percentile to mean anything.
MIN_WINDOW_SECONDS = 60
#: Longer windows read more rows than one request should: the cost grows with the window
#: (bench/stats_query.py prints it). Prometheus is the tool for history beyond a week.
MAX_WINDOW_SECONDS = 7 * 24 * 3600
#: ``?window=`` is a number of seconds, or a number with one of these units: ``90s``, ``15m``, ``1h``, ``7d``.
WINDOW_UNITS: dict[str, int] = {"s": 1, "m": 60, "h": 3600, "d": 86400}
#: At most 7 digits: anything longer is out of bounds anyway, and the pattern keeps it a 422.
WINDOW_PATTERN = r"^[0-9]{1,7}[smhd]?$"

#: Percentiles of run time and queue wait, as fractions.
PERCENTILES: tuple[float, ...] = (0.50, 0.95, 0.99)
#: Throughput is reported per minute, over this many minutes (the current one last).
THROUGHPUT_MINUTES = 60
SECONDS_PER_MINUTE = 60
SECONDS_PER_DAY = 86400.0
#: Error texts listed by default, and at most (``?top_errors=``).
TOP_ERRORS_DEFAULT = 10
TOP_ERRORS_MAX = 50
#: An error text is grouped whole but shown cut to this length: a traceback is not a label.
ERROR_TEXT_MAX_CHARS = 300
#: Durations are rounded to the resolution the database computes them with: PostgreSQL's
#: timestamps keep microseconds, SQLite's date functions milliseconds.
DURATION_DECIMALS: dict[str, int] = {"postgresql": 6, "sqlite": 3}

#: The statuses a task ends in: the only ones with ``completed_at`` set, the only ones in the index.
FINAL_STATUSES: tuple[TaskStatus, ...] = (TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED)
#: The status counted as "all tasks minus the others": the one that dominates a healthy table.
DOMINANT_STATUS = TaskStatus.COMPLETED

# ----------------------------------------------------------------------------------------------
# The response


class StatusCounts(BaseModel):
    """How many tasks are in each status right now, over the whole table."""

    pending: int = 0
    running: int = 0
    retrying: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    total: int = Field(0, description="Every task in the table.")


class Percentiles(BaseModel):
    """p50 / p95 / p99 of a duration in seconds (exact, interpolated like SQL's ``percentile_cont``); null with no data."""

    p50: float | None = None
    p95: float | None = None
    p99: float | None = None


class TaskTypeStats(BaseModel):
    """One task type over the window: how its tasks ended, and how long they took."""

    task_type: str
    completed: int = Field(0, description="Tasks of this type that completed in the window.")
    failed: int = Field(0, description="Tasks that failed for good in the window (retries used up, or a permanent error).")
    cancelled: int = Field(0, description="Tasks cancelled in the window (not failures: somebody decided).")
    failure_rate: float | None = Field(None, description="failed ÷ (completed + failed); null when neither happened.")
    run_seconds: Percentiles = Field(
        default_factory=Percentiles, description="Started → completed, over the completed tasks (the attempt that succeeded)."
    )
    wait_seconds: Percentiles = Field(
        default_factory=Percentiles,
        description="Created → started, over the completed tasks: time in the queue, earlier attempts and backoff included.",
    )


class PriorityStats(BaseModel):
    """One priority level over the window: how many of its tasks completed, and how long they waited."""

    priority: int = Field(description="1 lowest … 5 highest.")
    completed: int = Field(0, description="Tasks of this level that completed in the window.")
    wait_seconds: Percentiles = Field(
        default_factory=Percentiles,
        description="Created → started, over the completed tasks: where priorities show (phase 5 serves high levels first).",
    )


class ThroughputMinute(BaseModel):
    """Tasks that ended in one minute."""

    minute: datetime = Field(description="Start of the minute (UTC).")
    completed: int = 0
    failed: int = 0


class ErrorCount(BaseModel):
    """One error text and how many tasks failed with it in the window."""

    error: str
    count: int
    last_seen: datetime | None = Field(None, description="When the latest of these tasks failed.")


class QueueDepth(BaseModel):
    """One RQ queue and the jobs waiting in it."""

    name: str
    queued: int


class WorkerSummary(BaseModel):
    """One RQ worker that is registered and heart-beating."""

    name: str
    state: str = Field(description="RQ's word for it: idle, busy, suspended …")
    queues: list[str]
    current_task_id: str | None = Field(None, description="The task (RQ job id) it is running, if any.")
    last_heartbeat: datetime | None = None


class RedisFigures(BaseModel):
    """What only Redis knows. When it is unreachable: ``reachable`` false, ``detail`` says why, figures null."""

    reachable: bool
    detail: str | None = None
    queues: list[QueueDepth] | None = None
    workers_alive: int | None = Field(
        default=None, description="RQ workers on these queues whose registration is alive (kept by heartbeats)."
    )
    workers: list[WorkerSummary] | None = None


class Stats(BaseModel):
    """The body of ``GET /stats``."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "generated_at": "2026-03-02T10:15:30.120000Z",
                    "window_seconds": 3600,
                    "window_start": "2026-03-02T09:15:30.120000Z",
                    "elapsed_ms": 12.4,
                    "counts": {
                        "pending": 3,
                        "running": 2,
                        "retrying": 1,
                        "completed": 9120,
                        "failed": 41,
                        "cancelled": 5,
                        "total": 9172,
                    },
                    "task_types": [
                        {
                            "task_type": "text_processing",
                            "completed": 310,
                            "failed": 4,
                            "cancelled": 0,
                            "failure_rate": 0.0127,
                            "run_seconds": {"p50": 3.02, "p95": 3.4, "p99": 3.9},
                            "wait_seconds": {"p50": 0.04, "p95": 1.2, "p99": 2.8},
                        }
                    ],
                    "priorities": [
                        {"priority": 5, "completed": 120, "wait_seconds": {"p50": 0.01, "p95": 0.05, "p99": 0.09}},
                        {"priority": 1, "completed": 40, "wait_seconds": {"p50": 2.4, "p95": 14.8, "p99": 31.0}},
                    ],
                    "throughput": [{"minute": "2026-03-02T10:15:00Z", "completed": 7, "failed": 0}],
                    "top_errors": [
                        {"error": "TransientTaskError: upstream timed out", "count": 3, "last_seen": "2026-03-02T10:11:04Z"}
                    ],
                    "redis": {
                        "reachable": True,
                        "detail": None,
                        "queues": [{"name": "phase4:tasks", "queued": 12}],
                        "workers_alive": 1,
                        "workers": [
                            {
                                "name": "worker-1",
                                "state": "busy",
                                "queues": ["phase4:tasks"],
                                "current_task_id": "3f1c2d4e-8a9b-4c5d-9e6f-0a1b2c3d4e5f",
                                "last_heartbeat": "2026-03-02T10:15:29Z",
                            }
                        ],
                    },
                }
            ]
        }
    )

    generated_at: datetime = Field(description="The instant every figure refers to (UTC).")
    window_seconds: int = Field(description="Length of the window the per-type figures and top errors cover.")
    window_start: datetime = Field(description="generated_at − window: tasks that ended at or after it are in the window.")
    elapsed_ms: float = Field(description="Time spent computing this answer, in milliseconds.")
    counts: StatusCounts
    task_types: list[TaskTypeStats] = Field(description="Every task type of the catalog, in catalog order.")
    priorities: list[PriorityStats] = Field(description="Every priority level, highest first.")
    throughput: list[ThroughputMinute] = Field(
        description=f"One entry per minute of the last {THROUGHPUT_MINUTES}, oldest first."
    )
    top_errors: list[ErrorCount] = Field(description="Most frequent error texts of the tasks that failed in the window.")
    redis: RedisFigures


# ----------------------------------------------------------------------------------------------
# ?window=


def parse_window(text: str) -> int:
    """``"3600"``, ``"90s"``, ``"15m"``, ``"1h"``, ``"7d"`` → seconds; ``ValueError`` saying what is allowed."""
    match = re.fullmatch(WINDOW_PATTERN, text)
    if match is None:
        raise ValueError(
            f"window must be a number of seconds or a number with a unit s, m, h or d (such as 15m, 1h, 7d); got {text!r}"
        )
    number, unit = text.rstrip("smhd"), text[-1] if text[-1] in WINDOW_UNITS else "s"
    seconds = int(number) * WINDOW_UNITS[unit]
    if not MIN_WINDOW_SECONDS <= seconds <= MAX_WINDOW_SECONDS:
        raise ValueError(
            f"window must be between {MIN_WINDOW_SECONDS} s (1m) and {MAX_WINDOW_SECONDS} s (7d); got {text} = {seconds} s"
        )
    return seconds


def window_seconds(
    window: Annotated[
        str,
        Query(
            pattern=WINDOW_PATTERN,
            description="How far back the per-type figures and top errors look: seconds, or a number with a unit "
            f"(s, m, h, d), between 1m and 7d. Default {DEFAULT_WINDOW_SECONDS // 3600}h.",
            examples=["1h", "15m", "86400", "7d"],
        ),
    ] = f"{DEFAULT_WINDOW_SECONDS // 3600}h",
) -> int:
    """The window in seconds; out of bounds is a 422 in FastAPI's own validation-error shape."""
    try:
        return parse_window(window)
    except ValueError as exc:
        raise RequestValidationError(
            [{"type": "value_error", "loc": ("query", "window"), "msg": str(exc), "input": window}]
        ) from None


WindowDep = Annotated[int, Depends(window_seconds)]

# ----------------------------------------------------------------------------------------------
# The database figures
#
# SQLite and PostgreSQL share the SQL except for date arithmetic, which no two databases
# spell alike: these two helpers hold the difference.


def seconds_between(end: Any, start: Any, dialect: str) -> ColumnElement[float]:
    """``end − start`` in seconds, as SQL. SQLite's date functions keep milliseconds, PostgreSQL microseconds."""
    if dialect == "postgresql":
        # SQLAlchemy types EXTRACT as an integer; the epoch of an interval has a fraction.
        return func.extract("epoch", end - start)  # type: ignore[return-value]
    return (func.julianday(end) - func.julianday(start)) * SECONDS_PER_DAY


def minute_of(timestamp: Any, dialect: str) -> ColumnElement[Any]:
    """The minute a timestamp falls in, as SQL: a naive UTC timestamp (PostgreSQL) or ``'YYYY-MM-DD HH:MM'`` text (SQLite)."""
    if dialect == "postgresql":
        return func.date_trunc("minute", func.timezone("UTC", timestamp))
    return func.strftime("%Y-%m-%d %H:%M", timestamp)


def as_utc_minute(value: datetime | str) -> datetime:
    """A :func:`minute_of` value, from either database, as an aware UTC datetime."""
    if isinstance(value, str):
        value = datetime.strptime(value, "%Y-%m-%d %H:%M")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def count_by_status(session: Session) -> StatusCounts:
    """Every status's count in one statement: the small ones by index range, the dominant one by difference."""
    others = [status for status in TaskStatus if status is not DOMINANT_STATUS]
    total = select(func.count()).select_from(Task).scalar_subquery()
    per_status = [select(func.count()).where(col(Task.status) == status.value).scalar_subquery() for status in others]
    row = session.execute(select(total, *per_status)).one()
    counts = {status.value: int(n) for status, n in zip(others, row[1:], strict=True)}
    counts[DOMINANT_STATUS.value] = int(row[0]) - sum(counts.values())
    return StatusCounts(**counts, total=int(row[0]))


def percentile_cont(ordered: Sequence[float], fraction: float) -> float | None:
    """The ``fraction`` percentile of sorted values, interpolated between the two nearest ranks.

    The same definition as SQL's ``percentile_cont`` (and ``statistics.quantiles(method="inclusive")``),
    so SQLite and PostgreSQL report the same numbers for the same rows.
    """
    if not ordered:
        return None
    position = fraction * (len(ordered) - 1)
    lower = math.floor(position)
    upper = min(lower + 1, len(ordered) - 1)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (position - lower)


def _rounded(values: Sequence[float | None] | None, decimals: int) -> Percentiles:
    """Three percentile values (p50, p95, p99) as a :class:`Percentiles`, rounded to what the database resolves."""
    if not values:
        return Percentiles()
    p50, p95, p99 = (round(float(v), decimals) if v is not None else None for v in values)
    return Percentiles(p50=p50, p95=p95, p99=p99)


def _ended_since(since: datetime, statuses: Sequence[TaskStatus] = FINAL_STATUSES) -> list[ColumnElement[bool]]:
    """The window as a range of the stats index: ``status IN (…) AND completed_at >= since``."""
    return [col(Task.status).in_([s.value for s in statuses]), col(Task.completed_at) >= since]


def _outcome_counts(rows: Sequence[Any]) -> dict[str, dict[str, int]]:
    """``(task_type, status, n)`` rows → ``{task_type: {status: n}}``, every final status present."""
    counts: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys((s.value for s in FINAL_STATUSES), 0))
    for task_type, status, n in rows:
        counts[task_type][status] += int(n)
    return counts


def _type_stats(task_type: str, outcomes: dict[str, int], run: Percentiles, wait: Percentiles) -> TaskTypeStats:
    completed, failed = outcomes.get(TaskStatus.COMPLETED.value, 0), outcomes.get(TaskStatus.FAILED.value, 0)
    return TaskTypeStats(
        task_type=task_type,
        completed=completed,
        failed=failed,
        cancelled=outcomes.get(TaskStatus.CANCELLED.value, 0),
        failure_rate=failed / (completed + failed) if completed + failed else None,
        run_seconds=run,
        wait_seconds=wait,
    )


#: Run and wait percentiles per group (a task type, or a priority level).
Latencies = dict[Any, tuple[Percentiles, Percentiles]]


def latencies_in_sql(
    session: Session, since: datetime, run: ColumnElement[float], wait: ColumnElement[float], group: Any = Task.task_type
) -> Latencies:
    """PostgreSQL: ``percentile_cont``, an ordered-set aggregate, sorts each group's durations where they are."""
    fractions = array(PERCENTILES, type_=Float)
    statement = (
        select(
            group,
            type_coerce(func.percentile_cont(fractions).within_group(run), ARRAY(Float)),
            type_coerce(func.percentile_cont(fractions).within_group(wait), ARRAY(Float)),
        )
        .where(*_ended_since(since, [TaskStatus.COMPLETED]), col(Task.started_at).is_not(None))
        .group_by(group)
    )
    decimals = DURATION_DECIMALS["postgresql"]
    return {
        key: (_rounded(run_values, decimals), _rounded(wait_values, decimals))
        for key, run_values, wait_values in session.execute(statement).all()
    }


def latencies_in_python(
    session: Session, since: datetime, run: ColumnElement[float], wait: ColumnElement[float], group: Any = Task.task_type
) -> Latencies:
    """SQLite has no percentile function: read the window's durations (an index-only range) and interpolate here."""
    durations: dict[Any, tuple[list[float], list[float]]] = defaultdict(lambda: ([], []))
    statement = select(group, run, wait).where(*_ended_since(since, [TaskStatus.COMPLETED]), col(Task.started_at).is_not(None))
    # Plain Core rows (session.connection()), not ORM results: at tens of thousands of rows, the
    # ORM's per-row bookkeeping would cost more than the query itself.
    for key, run_value, wait_value in session.connection().execute(statement).all():
        durations[key][0].append(run_value)
        durations[key][1].append(wait_value)
    decimals = DURATION_DECIMALS["sqlite"]
    latencies: Latencies = {}
    for key, (runs, waits) in durations.items():
        runs.sort()
        waits.sort()
        latencies[key] = (
            _rounded([percentile_cont(runs, f) for f in PERCENTILES], decimals),
            _rounded([percentile_cont(waits, f) for f in PERCENTILES], decimals),
        )
    return latencies


def stats_by_type(session: Session, since: datetime) -> list[TaskTypeStats]:
    """Outcomes and latency percentiles per task type, for the tasks that ended since ``since``."""
    dialect = session.get_bind().dialect.name
    outcomes = _outcome_counts(
        session.execute(
            select(col(Task.task_type), col(Task.status), func.count())
            .where(*_ended_since(since))
            .group_by(col(Task.task_type), col(Task.status))
        ).all()
    )
    run = seconds_between(Task.completed_at, Task.started_at, dialect)
    wait = seconds_between(Task.started_at, Task.created_at, dialect)
    latencies = (latencies_in_sql if dialect == "postgresql" else latencies_in_python)(session, since, run, wait)
    # Every catalog type, in catalog order, so a dashboard's table keeps its rows in place.
    names = [t.value for t in CATALOG] + sorted(set(outcomes) - {t.value for t in CATALOG})
    return [_type_stats(name, outcomes.get(name, {}), *latencies.get(name, (Percentiles(), Percentiles()))) for name in names]


def stats_by_priority(session: Session, since: datetime) -> list[PriorityStats]:
    """Completed tasks and their queue wait per priority level, for the tasks that ended since ``since``."""
    dialect = session.get_bind().dialect.name
    completed: dict[int, int] = dict(
        session.execute(
            select(col(Task.priority), func.count())
            .where(*_ended_since(since, [TaskStatus.COMPLETED]))
            .group_by(col(Task.priority))
        ).all()
    )
    run = seconds_between(Task.completed_at, Task.started_at, dialect)
    wait = seconds_between(Task.started_at, Task.created_at, dialect)
    latencies = (latencies_in_sql if dialect == "postgresql" else latencies_in_python)(session, since, run, wait, Task.priority)
    return [
        PriorityStats(
            priority=level,
            completed=int(completed.get(level, 0)),
            wait_seconds=latencies.get(level, (Percentiles(), Percentiles()))[1],
        )
        for level in range(PRIORITY_HIGHEST, PRIORITY_LOWEST - 1, -1)
    ]


def throughput_per_minute(session: Session, now: datetime) -> list[ThroughputMinute]:
    """Completed and failed tasks per minute over the last hour, oldest minute first, the current one last."""
    dialect = session.get_bind().dialect.name
    current_minute = now.astimezone(UTC).replace(second=0, microsecond=0)
    start = current_minute - timedelta(minutes=THROUGHPUT_MINUTES - 1)
    series = [ThroughputMinute(minute=start + timedelta(minutes=i)) for i in range(THROUGHPUT_MINUTES)]
    minute = minute_of(Task.completed_at, dialect)
    statement = (
        select(minute, col(Task.status), func.count())
        .where(*_ended_since(start, [TaskStatus.COMPLETED, TaskStatus.FAILED]))
        .group_by(minute, Task.status)
    )
    for label, status, n in session.execute(statement).all():
        index = int((as_utc_minute(label) - start).total_seconds()) // SECONDS_PER_MINUTE
        if 0 <= index < THROUGHPUT_MINUTES:  # a task that ended after `now`, while we counted, waits for the next answer
            setattr(series[index], status, int(n))
    return series


def top_errors_since(session: Session, since: datetime, limit: int) -> list[ErrorCount]:
    """The most frequent error texts of the tasks that failed since ``since`` (most frequent, then latest, first)."""
    n = func.count().label("n")
    last_seen = func.max(Task.completed_at).label("last_seen")
    statement = (
        select(col(Task.error), n, last_seen)
        .where(*_ended_since(since, [TaskStatus.FAILED]))
        .group_by(Task.error)
        .order_by(n.desc(), last_seen.desc())
        .limit(limit)
    )
    return [
        ErrorCount(error=(error or "(no error text)")[:ERROR_TEXT_MAX_CHARS], count=int(count), last_seen=seen)
        for error, count, seen in session.execute(statement).all()
    ]


# ----------------------------------------------------------------------------------------------
# The Redis figures


def stats_queues(state: Any) -> list[Queue]:
    """The queues of this phase: ``app.state.queues`` when a phase has several (phase 5), else ``[app.state.queue]``."""
    return list(getattr(state, "queues", None) or [state.queue])


def redis_figures(queues: Sequence[Queue]) -> RedisFigures:
    """Queue depths and live workers, or ``reachable=False`` with the reason when Redis does not answer."""
    try:
        depths = [QueueDepth(name=queue.name, queued=queue.count) for queue in queues]
        workers: dict[str, WorkerSummary] = {}
        for queue in queues:
            # Worker.all skips (and unregisters) workers whose key has expired: a worker's key
            # lives as long as its heartbeats keep renewing it, so these are the live ones.
            for worker in Worker.all(queue=queue, serializer=JSONSerializer):
                if worker.name not in workers:
                    workers[worker.name] = WorkerSummary(
                        name=worker.name,
                        state=str(getattr(worker.get_state(), "value", worker.get_state())),  # a str or RQ's WorkerStatus
                        queues=worker.queue_names(),
                        current_task_id=worker.get_current_job_id(),
                        last_heartbeat=worker.last_heartbeat,
                    )
    except RedisError as exc:
        return RedisFigures(reachable=False, detail=f"Redis unreachable: {type(exc).__name__}: {exc}")
    ordered = sorted(workers.values(), key=lambda w: w.name)
    return RedisFigures(reachable=True, queues=depths, workers_alive=len(ordered), workers=ordered)


# ----------------------------------------------------------------------------------------------
# Everything together


def collect_stats(
    session: Session,
    queues: Sequence[Queue],
    *,
    window: int = DEFAULT_WINDOW_SECONDS,
    top_errors: int = TOP_ERRORS_DEFAULT,
    now: datetime | None = None,
) -> Stats:
    """Every figure of ``GET /stats``, as of ``now`` (the benchmark passes the end of its seeded history)."""
    started = time.perf_counter()
    now = now or utc_now()
    since = now - timedelta(seconds=window)
    counts = count_by_status(session)
    task_types = stats_by_type(session, since)
    priorities = stats_by_priority(session, since)
    throughput = throughput_per_minute(session, now)
    errors = top_errors_since(session, since, top_errors)
    redis = redis_figures(queues)
    return Stats(
        generated_at=now,
        window_seconds=window,
        window_start=since,
        elapsed_ms=round((time.perf_counter() - started) * 1000, 2),
        counts=counts,
        task_types=task_types,
        priorities=priorities,
        throughput=throughput,
        top_errors=errors,
        redis=redis,
    )


router = APIRouter(tags=["monitoring"])


@router.get(
    "/stats",
    response_model=Stats,
    responses={
        422: {
            "description": "A window out of bounds or badly written, or top_errors out of range.",
            "content": {
                "application/json": {
                    "example": {
                        "detail": [
                            {
                                "type": "value_error",
                                "loc": ["query", "window"],
                                "msg": "window must be between 60 s (1m) and 604800 s (7d); got 8d = 691200 s",
                                "input": "8d",
                            }
                        ]
                    }
                }
            },
        },
        503: {"description": "The task store does not answer (Redis down is not an error: see redis.reachable)."},
    },
)
def read_stats(
    request: Request,
    session: SessionDep,
    window: WindowDep,
    top_errors: Annotated[int, Query(ge=1, le=TOP_ERRORS_MAX, description="How many error texts to list.")] = TOP_ERRORS_DEFAULT,
) -> Stats:
    """Counts by status, per-type outcomes and latencies over a window, throughput, errors, queues and workers."""
    return collect_stats(session, stats_queues(request.app.state), window=window, top_errors=top_errors)
