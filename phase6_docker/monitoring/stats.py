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

*The same cost at any size.* The database figures come from aggregates the database keeps as
tasks change (:mod:`.aggregates`: triggers capture every change in its own transaction, and
the API folds them into rows per minute, ten minutes, hour, six hours and day). A window of any length reads at
most a few hundred rows per task type, never the tasks in it. The window is rounded down to a
whole minute; counts are exact for it, and the counts by status are exact now.

*Percentiles within 5 %.* Run and wait times are kept as histogram buckets 10 % wide, so a
percentile is within 4.9 % of the exact ``percentile_cont`` of the rows (or half a millisecond,
below a millisecond): plenty to see which type is slow, and what lets the cost stay flat.

*Shared work.* Ten dashboards polling every two seconds cost what one does: an answer is
computed once per window and second (:class:`StatsCache`), in this process and, through Redis,
across the processes of one API.

*Redis down is a fact to report, not an error.* The database figures are still true; the
Redis-backed ones say ``reachable: false`` and why. ``/stats`` answers 200 either way.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field
from redis import Redis
from redis.exceptions import RedisError
from rq import Queue, Worker
from rq.serializers import JSONSerializer
from sqlalchemy import Connection
from sqlmodel import Session

from shared.models import PRIORITY_HIGHEST, PRIORITY_LOWEST, TaskStatus, utc_now
from shared.tasks import CATALOG

from ..web import SessionDep
from . import aggregates

# ----------------------------------------------------------------------------------------------
# What the figures cover

#: The window a request gets without ``?window=``: the last hour, what an operator looks at first.
DEFAULT_WINDOW_SECONDS = 3600
#: Shorter windows hold too few tasks for a percentile to mean anything.
MIN_WINDOW_SECONDS = 60
#: The aggregates keep eight days of periods (aggregates.RETENTION); Prometheus is the tool for
#: history beyond a week. The cost does not grow with the window (bench/stats_query.py prints it).
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
#: Percentiles are rounded to the microsecond: finer digits would claim a precision the buckets lack.
DURATION_DECIMALS = 6


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
    """p50 / p95 / p99 of a duration in seconds, from histogram buckets 10 % wide: within 5 % of the exact
    ``percentile_cont`` of the rows (within half a millisecond below 1 ms); null with no data."""

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


def count_by_status(connection: Connection) -> StatusCounts:
    """Every status's count now, from the maintained counts (exact, whatever the table's size)."""
    counts = aggregates.status_counts(connection)
    known = {status.value: counts.get(status.value, 0) for status in TaskStatus}
    return StatusCounts(**known, total=sum(counts.values()))


def _percentiles(buckets: dict[int, int] | None) -> Percentiles:
    """p50 / p95 / p99 from histogram buckets, rounded to the microsecond."""
    if not buckets:
        return Percentiles()
    values = [aggregates.percentile_from_buckets(buckets, fraction) for fraction in PERCENTILES]
    p50, p95, p99 = (round(v, DURATION_DECIMALS) if v is not None else None for v in values)
    return Percentiles(p50=p50, p95=p95, p99=p99)


def stats_by_type(figures: aggregates.WindowFigures) -> list[TaskTypeStats]:
    """Outcomes and latency percentiles per task type, every catalog type in catalog order."""
    names = [t.value for t in CATALOG]
    names += sorted({task_type for task_type, _ in figures.outcomes} - set(names))
    result = []
    for name in names:
        completed = figures.outcomes.get((name, TaskStatus.COMPLETED.value), 0)
        failed = figures.outcomes.get((name, TaskStatus.FAILED.value), 0)
        result.append(
            TaskTypeStats(
                task_type=name,
                completed=completed,
                failed=failed,
                cancelled=figures.outcomes.get((name, TaskStatus.CANCELLED.value), 0),
                failure_rate=failed / (completed + failed) if completed + failed else None,
                run_seconds=_percentiles(figures.type_buckets.get((name, "run"))),
                wait_seconds=_percentiles(figures.type_buckets.get((name, "wait"))),
            )
        )
    return result


def stats_by_priority(figures: aggregates.WindowFigures) -> list[PriorityStats]:
    """Completed tasks and their queue wait per priority level, highest first."""
    return [
        PriorityStats(
            priority=level,
            completed=figures.completed_by_priority.get(level, 0),
            wait_seconds=_percentiles(figures.priority_buckets.get(level)),
        )
        for level in range(PRIORITY_HIGHEST, PRIORITY_LOWEST - 1, -1)
    ]


def throughput_per_minute(connection: Connection, now: datetime) -> list[ThroughputMinute]:
    """Completed and failed tasks per minute over the last hour, oldest minute first, the current one last."""
    current_minute = now.astimezone(UTC).replace(second=0, microsecond=0)
    start = current_minute - timedelta(minutes=THROUGHPUT_MINUTES - 1)
    per_minute = aggregates.per_minute(connection, start, THROUGHPUT_MINUTES)
    series = []
    for i in range(THROUGHPUT_MINUTES):
        minute = start + timedelta(minutes=i)
        series.append(
            ThroughputMinute(
                minute=minute,
                completed=per_minute.get((minute, TaskStatus.COMPLETED.value), 0),
                failed=per_minute.get((minute, TaskStatus.FAILED.value), 0),
            )
        )
    return series


def top_errors_since(connection: Connection, since: datetime, now: datetime, limit: int) -> list[ErrorCount]:
    """The most frequent error texts of the tasks that failed in the window (most frequent, then latest, first)."""
    return [
        ErrorCount(error=error[:ERROR_TEXT_MAX_CHARS], count=count, last_seen=seen)
        for error, count, seen in aggregates.top_errors(connection, since, now, limit)
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
    """Every figure of ``GET /stats``, as of ``now`` (the benchmark passes the end of its seeded history).

    The events captured since the last fold are folded first, so the answer includes every
    change committed before it started.
    """
    started = time.perf_counter()
    now = now or utc_now()
    since = aggregates.period_start(now - timedelta(seconds=window), aggregates.MINUTE)
    aggregates.fold(session.get_bind(), now=now)  # type: ignore[arg-type]
    connection = session.connection()
    figures = aggregates.window_figures(connection, since, now)
    return Stats(
        generated_at=now,
        window_seconds=window,
        window_start=since,
        elapsed_ms=0.0,
        counts=count_by_status(connection),
        task_types=stats_by_type(figures),
        priorities=stats_by_priority(figures),
        throughput=throughput_per_minute(connection, now),
        top_errors=top_errors_since(connection, since, now, top_errors),
        redis=redis_figures(queues),
    ).model_copy(update={"elapsed_ms": round((time.perf_counter() - started) * 1000, 2)})


# ----------------------------------------------------------------------------------------------
# Shared work: one computation per window and second

#: How long a process waits for another process's computation before doing its own.
SHARED_WAIT_SECONDS = 1.0
SHARED_POLL_SECONDS = 0.01


class StatsCache:
    """Concurrent requests for the same figures share one computation, for ``ttl`` seconds.

    In this process, a lock per key makes the requests that arrive while one computes wait for
    its answer instead of computing their own. Across the processes of one API (phase 6 runs
    four), the answer is put in Redis under a short expiry, and a ``SET NX`` claim says who
    computes; the others poll for the answer (up to :data:`SHARED_WAIT_SECONDS`). Redis down
    only costs the sharing: each process then computes for itself.
    """

    def __init__(self, redis: Redis | None, namespace: str, ttl: float) -> None:
        self.redis = redis
        self.namespace = namespace
        self.ttl = ttl
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._answers: dict[str, tuple[float, Stats]] = {}

    def get(self, key: str, compute: Callable[[], Stats]) -> Stats:
        if self.ttl <= 0:
            return compute()
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            expires, answer = self._answers.get(key, (0.0, None))
            if answer is not None and time.monotonic() < expires:
                return answer
            answer = self._shared(key, compute)
            self._answers[key] = (time.monotonic() + self.ttl, answer)
            return answer

    def _shared(self, key: str, compute: Callable[[], Stats]) -> Stats:
        if self.redis is None:
            return compute()
        answer_key, claim_key = f"{self.namespace}:stats:{key}", f"{self.namespace}:stats:{key}:computing"
        ttl_ms = max(1, int(self.ttl * 1000))
        try:
            if (cached := self.redis.get(answer_key)) is not None:
                return Stats.model_validate_json(cached)
            if self.redis.set(claim_key, b"1", nx=True, px=int(SHARED_WAIT_SECONDS * 1000)):
                answer = compute()
                self.redis.set(answer_key, answer.model_dump_json(), px=ttl_ms)
                self.redis.delete(claim_key)
                return answer
            deadline = time.monotonic() + SHARED_WAIT_SECONDS
            while time.monotonic() < deadline:
                time.sleep(SHARED_POLL_SECONDS)
                if (cached := self.redis.get(answer_key)) is not None:
                    return Stats.model_validate_json(cached)
        except RedisError:
            pass
        return compute()


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
    """Counts by status, per-type outcomes and latencies over a window, throughput, errors, queues and workers.

    Computed at most once per second per window and shared by every request meanwhile (a few
    dashboards cost what one does); the percentiles come from histogram buckets, within 5 %.
    """
    queues = stats_queues(request.app.state)
    cache: StatsCache | None = getattr(request.app.state, "stats_cache", None)
    if cache is None:
        return collect_stats(session, queues, window=window, top_errors=top_errors)
    return cache.get(f"{window}:{top_errors}", lambda: collect_stats(session, queues, window=window, top_errors=top_errors))
