"""Part (d), on request (``--stats-rows N``): how long ``GET /stats`` takes on a table of N tasks.

The issue's promise: ``/stats`` answers in under 100 ms with 1,000,000 rows in the task table,
on SQLite and on PostgreSQL. One measurement per database (SQLite, and PostgreSQL when a URL is
given):

1. a task table of N rows, seeded in bulk by :mod:`bench.task_table` with every index the
   application declares: SQLite in a fresh file of the work folder, PostgreSQL in a schema of
   its own (``tasklab_bench_stats``), created for the run and dropped after it;
2. :func:`phase5_scaling.monitoring.stats.collect_stats`, the function behind the route (every SQL
   query, the Redis reads of queue depth and workers, the response model; no HTTP), runs a few
   times to warm the caches, then ``--stats-repeats`` times measured, for each window of
   ``--stats-windows``; median and p95 are reported.

The seeded history is fixed in time (it ends about a month after 2026-01-01, the same rows on
every run), so "now" is pinned to its last task instead of the wall clock: the default
one-hour window then holds what an hour of this table's traffic holds (about 1,400 tasks).
The cost of the window figures grows with the tasks in the window, which is why the larger
windows are measured too.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from redis import Redis
from rq import Queue
from rq.serializers import JSONSerializer
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bench import timing
from bench.config import BenchConfig
from bench.task_table import scratch_engine, seed_tasks
from phase5_scaling.monitoring.stats import collect_stats, parse_window
from shared.models import Task

#: The PostgreSQL schema the seeded table lives in: never the application's own tables, and not
#: part (c)'s either, so the two parts can run in one invocation.
BENCH_SCHEMA = "tasklab_bench_stats"
#: The queue whose depth the measured calls read (empty: its name is the benchmark's own).
BENCH_QUEUE_NAME = "bench:stats"
#: Unmeasured calls first: caches, the connection pool, compiled statements.
WARMUP_RUNS = 3
#: The issue's promise for ``GET /stats`` at a million rows.
STATS_BUDGET_MS = 100.0
#: "Now" is this long after the seeded history's last task was created.
NOW_AFTER_LAST_TASK = timedelta(seconds=10)


@dataclass
class WindowTiming:
    """``collect_stats`` timed for one window on one database."""

    window: str
    window_seconds: int
    #: Tasks that ended inside the window: what the per-type figures read.
    ended_in_window: int = 0
    samples_ms: list[float] = field(default_factory=list)

    @property
    def median_ms(self) -> float:
        return timing.median_ms(self.samples_ms)

    @property
    def p95_ms(self) -> float:
        return timing.p95_ms(self.samples_ms)

    @property
    def within_budget(self) -> bool:
        return self.p95_ms < STATS_BUDGET_MS


@dataclass
class StatsQueryResult:
    """Every window's timing on one database, and how long seeding it took."""

    backend: str
    rows: int
    seed_seconds: float = float("nan")
    now: datetime | None = None
    timings: list[WindowTiming] = field(default_factory=list)


def stats_engine(backend: str, config: BenchConfig, workdir: Path) -> AbstractContextManager[Engine]:
    """The application's engine for ``backend``, on a database that belongs to the benchmark."""
    return scratch_engine(
        backend, sqlite_path=workdir / "stats.db", postgres_url=config.stats_postgres_url, schema=BENCH_SCHEMA, keep=config.keep
    )


def end_of_history(engine: Engine) -> datetime:
    with Session(engine) as session:
        last = session.exec(select(func.max(Task.created_at))).one()
    if last is None:
        raise RuntimeError("the seeded table is empty")
    return last + NOW_AFTER_LAST_TASK


def time_window(engine: Engine, queues: list[Queue], window: str, now: datetime, repeats: int) -> WindowTiming:
    """``collect_stats`` for one window: a session per call, as a request gets."""
    timing = WindowTiming(window=window, window_seconds=parse_window(window))

    def run() -> int:
        with Session(engine) as session:
            stats = collect_stats(session, queues, window=timing.window_seconds, now=now)
        return sum(t.completed + t.failed + t.cancelled for t in stats.task_types)

    for _ in range(WARMUP_RUNS):
        run()
    for _ in range(repeats):
        started = time.perf_counter()
        timing.ended_in_window = run()
        timing.samples_ms.append((time.perf_counter() - started) * 1000)
    return timing


def measure_stats_query(
    backend: str, config: BenchConfig, workdir: Path, redis_url: str, announce: Callable[[str], None]
) -> StatsQueryResult:
    """Seed ``config.stats_rows`` tasks in ``backend`` and time ``collect_stats`` for each window."""
    result = StatsQueryResult(backend=backend, rows=config.stats_rows)
    connection = Redis.from_url(redis_url)
    queues = [Queue(BENCH_QUEUE_NAME, connection=connection, serializer=JSONSerializer)]
    try:
        with stats_engine(backend, config, workdir) as engine:
            announce(f"(d) /stats on {backend}: seeding {config.stats_rows:,} tasks …")
            started = time.perf_counter()
            seed_tasks(engine, config.stats_rows)
            result.seed_seconds = time.perf_counter() - started
            result.now = end_of_history(engine)
            announce(f"(d) /stats on {backend}: {len(config.stats_windows)} window(s) × {config.stats_repeats} runs …")
            for window in config.stats_windows:
                result.timings.append(time_window(engine, queues, window, result.now, config.stats_repeats))
    finally:
        connection.close()
    return result
