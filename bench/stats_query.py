"""Part (d), on request (``--stats-rows N``): how long ``GET /stats`` takes on a table of N tasks.

The promise: ``/stats`` answers in under 50 ms with 1,000,000 rows in the task table, on
SQLite and on PostgreSQL, whatever the window. The route no longer reads the task table: triggers
on ``task`` capture every change into ``task_stats_event``, and :func:`aggregates.fold` folds
those events into small per-period rollup tables (a minute, ten minutes, an hour, six hours, a
day), which a window reads as a few dozen periods; percentiles come from histogram buckets,
within 5 % of the exact ones. One measurement per database (SQLite, and PostgreSQL when a URL is
given) and span of history (``--stats-spans``):

1. a task table of N rows, seeded in bulk by :mod:`bench.task_table` with every index the
   application declares and no trigger yet, created over the last *span* up to the wall clock
   (so the aggregates' 8-day retention keeps every one), with the realistic mix: 80 % completed,
   10 % failed, 5 % pending, 3 % running, 2 % retrying, eight task types, priorities 1 to 5.
   SQLite in a fresh file of the work folder, PostgreSQL in a schema of its own
   (``tasklab_bench_stats``), created for the run and dropped after it;
2. :func:`aggregates.install` on that table, timed: it creates the aggregates and the triggers
   and, finding no triggers, builds the aggregates from the existing rows, the one-off cost of
   an upgrade (the "build seconds"). On PostgreSQL the new tables are then analysed, as
   autovacuum would a minute later;
3. :func:`phase5_scaling.monitoring.stats.collect_stats`, the function behind the route (the fold,
   every SQL query, the Redis reads of queue depth and workers, the response model; no HTTP),
   runs a few times to warm the caches, then ``--stats-repeats`` times measured, for each window
   of ``--stats-windows``, with "now" pinned to the end of the seeded history; median and p95 are
   reported, with the tasks that ended in the window, and the median CPU time of this process
   per call (the call's own cost, which a busy machine does not inflate; the PostgreSQL
   server's share is not in it).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from redis import Redis
from rich.progress import Progress, TaskID
from rq import Queue
from rq.serializers import JSONSerializer
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session

from bench import timing
from bench.config import BenchConfig
from bench.task_table import REALISTIC_STATUS_MIX, scratch_engine, seed_tasks
from phase5_scaling.monitoring import aggregates
from phase5_scaling.monitoring.stats import collect_stats, parse_window

#: The PostgreSQL schema the seeded table lives in: never the application's own tables, and not
#: part (c)'s either, so the two parts can run in one invocation.
BENCH_SCHEMA = "tasklab_bench_stats"
#: The queue whose depth the measured calls read (empty: its name is the benchmark's own).
BENCH_QUEUE_NAME = "bench:stats"
#: Unmeasured calls first: caches, the connection pool, compiled statements.
WARMUP_RUNS = 3
#: The promise for ``GET /stats`` at a million rows (it was 100 ms before the aggregates).
STATS_BUDGET_MS = 50.0


@dataclass
class WindowTiming:
    """``collect_stats`` timed for one window on one database."""

    window: str
    window_seconds: int
    #: Tasks that ended inside the window: what the per-type figures describe.
    ended_in_window: int = 0
    samples_ms: list[float] = field(default_factory=list)
    #: This process's CPU time of each call (Python, and SQLite, which runs in it; not the
    #: PostgreSQL server's): on a machine other programs keep busy, wall time waits for a core,
    #: CPU time does not, so this is the call's own cost.
    cpu_samples_ms: list[float] = field(default_factory=list)

    @property
    def median_ms(self) -> float:
        return timing.median_ms(self.samples_ms)

    @property
    def cpu_median_ms(self) -> float:
        return timing.median_ms(self.cpu_samples_ms)

    @property
    def p95_ms(self) -> float:
        return timing.p95_ms(self.samples_ms)

    @property
    def within_budget(self) -> bool:
        return self.p95_ms < STATS_BUDGET_MS


@dataclass
class StatsQueryResult:
    """Every window's timing on one database and span, and how long seeding and the build took."""

    backend: str
    rows: int
    #: How far back the seeded history reaches, as given (``24h``), and in seconds.
    span: str
    span_seconds: int
    seed_seconds: float = float("nan")
    #: :func:`aggregates.install` on the seeded table: the aggregates built from every row.
    build_seconds: float = float("nan")
    #: The end of the seeded history: the wall clock when seeding started, and "now" for every call.
    now: datetime | None = None
    timings: list[WindowTiming] = field(default_factory=list)


def stats_engine(backend: str, config: BenchConfig, sqlite_path: Path) -> AbstractContextManager[Engine]:
    """The application's engine for ``backend``, on a database that belongs to the benchmark."""
    return scratch_engine(
        backend, sqlite_path=sqlite_path, postgres_url=config.stats_postgres_url, schema=BENCH_SCHEMA, keep=config.keep
    )


def analyze_aggregates(engine: Engine) -> None:
    """PostgreSQL: planner statistics for the freshly built aggregates, what autovacuum gathers soon after."""
    if engine.dialect.name != "postgresql":
        return
    tables = ", ".join(table.name for table in aggregates.METADATA.sorted_tables)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text(f"VACUUM ANALYZE {tables}"))


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
        started, cpu_started = time.perf_counter(), time.process_time()
        timing.ended_in_window = run()
        timing.samples_ms.append((time.perf_counter() - started) * 1000)
        timing.cpu_samples_ms.append((time.process_time() - cpu_started) * 1000)
    return timing


def measure_stats_query(
    backend: str,
    span: str,
    config: BenchConfig,
    workdir: Path,
    redis_url: str,
    announce: Callable[[str], None],
    progress: Progress | None = None,
) -> StatsQueryResult:
    """Seed ``config.stats_rows`` tasks over ``span`` in ``backend``, build the aggregates, time each window."""
    result = StatsQueryResult(backend=backend, rows=config.stats_rows, span=span, span_seconds=parse_window(span))
    connection = Redis.from_url(redis_url)
    queues = [Queue(BENCH_QUEUE_NAME, connection=connection, serializer=JSONSerializer)]
    sqlite_path = workdir / f"stats-{span}.db"
    what = f"(d) /stats on {backend}, span {span}"
    bars: list[TaskID] = []

    def bar(description: str) -> Callable[[int, int], None] | None:
        if progress is None:
            return None
        bars.append(task := progress.add_task(description, total=config.stats_rows))
        return lambda done, total: progress.update(task, completed=done, total=max(total, 1))

    try:
        with stats_engine(backend, config, sqlite_path) as engine:
            announce(f"{what}: seeding {config.stats_rows:,} tasks over the last {span} …")
            result.now = datetime.now(UTC)
            seeded = bar(f"{what} · seeding")
            loaded = 0

            def on_rows(rows: int) -> None:
                nonlocal loaded
                loaded += rows
                if seeded is not None:
                    seeded(loaded, config.stats_rows)

            started = time.perf_counter()
            seed_tasks(
                engine,
                config.stats_rows,
                span=timedelta(seconds=result.span_seconds),
                end=result.now,
                status_mix=REALISTIC_STATUS_MIX,
                on_rows=on_rows,
            )
            result.seed_seconds = time.perf_counter() - started
            announce(f"{what}: building the aggregates from {config.stats_rows:,} tasks …")
            started = time.perf_counter()
            if not aggregates.install(engine, progress=bar(f"{what} · building")):
                raise RuntimeError("aggregates.install found the triggers already there: nothing was built")
            result.build_seconds = time.perf_counter() - started
            analyze_aggregates(engine)
            announce(f"{what}: {len(config.stats_windows)} window(s) × {config.stats_repeats} runs …")
            for window in config.stats_windows:
                result.timings.append(time_window(engine, queues, window, result.now, config.stats_repeats))
    finally:
        connection.close()
        if progress is not None:
            for task in bars:
                progress.remove_task(task)
        if not config.keep:
            for leftover in sqlite_path.parent.glob(f"{sqlite_path.name}*"):  # the file, its WAL, its turn file
                leftover.unlink(missing_ok=True)
    return result
