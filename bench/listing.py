"""Part (c), on request (``--list-rows N``): how long ``GET /tasks`` takes on a table of N tasks.

One measurement per database (SQLite, and PostgreSQL when a URL is given):

1. a task table of N rows, seeded in bulk (:mod:`bench.task_table`) with every index the
   application declares: SQLite in a fresh file of the work folder, PostgreSQL in a schema of
   its own (``tasklab_bench``), created for the run and dropped after it;
2. each list query of :data:`LIST_QUERIES` runs through :func:`phase5_scaling.store.list_tasks`, the
   function behind the route (the page and its count, ORM objects included, no HTTP), a few times
   to warm the caches and then ``--list-repeats`` times measured; median and p95 are reported.

Deep pages are read the way a client reaches them: with the cursor of the page before, taken
at half or all of the way down that filter's list. Two more rows measure what the API no
longer does, for comparison: an offset half-way down, and an exact ``COUNT(*)`` of the
largest status (why ``total`` is exact only up to 10,000).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bench import timing
from bench.config import BenchConfig
from bench.task_table import scratch_engine, seed_tasks
from phase5_scaling import store
from shared.models import Task, TaskStatus
from shared.tasks import TaskType

#: The PostgreSQL schema the seeded table lives in: never the application's own tables.
BENCH_SCHEMA = "tasklab_bench"
#: The page size of every measured query: the route's default.
PAGE_SIZE = 20
#: Unmeasured runs of each query first: caches, prepared statements, the pool.
WARMUP_RUNS = 3
#: The budget the issue sets for every list query, at any depth, at a million rows.
LIST_QUERY_BUDGET_MS = 20.0


@dataclass(frozen=True)
class ListQuery:
    """One list request, described by its filters and how deep into the list it starts."""

    label: str
    status: TaskStatus | None = None
    task_type: TaskType | None = None
    #: Where the page starts, as a fraction of the matching tasks (0: the first page).
    depth: float = 0.0
    #: Reach that depth with ``offset`` instead of the cursor of the page before.
    by_offset: bool = False
    #: Or skip exactly this many matching tasks with ``offset``.
    skip: int = 0
    #: False for the rows kept for comparison: what the API refuses or no longer does.
    served: bool = True
    #: Replace the listing with an exact count of the matches (for the comparison row).
    exact_count: bool = False


LIST_QUERIES: tuple[ListQuery, ...] = (
    ListQuery("newest first, no filter"),
    ListQuery("status=failed", status=TaskStatus.FAILED),
    ListQuery("status=completed", status=TaskStatus.COMPLETED),
    ListQuery("task_type=noop", task_type=TaskType.NOOP),
    ListQuery("status=failed & task_type=noop", status=TaskStatus.FAILED, task_type=TaskType.NOOP),
    ListQuery("cursor half-way, no filter", depth=0.5),
    ListQuery("cursor at the last page, no filter", depth=1.0),
    ListQuery("cursor half-way, status=completed", status=TaskStatus.COMPLETED, depth=0.5),
    ListQuery("cursor half-way, task_type=noop", task_type=TaskType.NOOP, depth=0.5),
    ListQuery(f"offset={store.MAX_OFFSET:,} (the deepest accepted)", skip=store.MAX_OFFSET),
    ListQuery("offset half-way (now 422: use the cursor)", depth=0.5, by_offset=True, served=False),
    ListQuery("exact COUNT(*) of status=completed", status=TaskStatus.COMPLETED, served=False, exact_count=True),
)


@dataclass
class QueryTiming:
    """One query's measured runs on one database."""

    query: ListQuery
    samples_ms: list[float] = field(default_factory=list)
    items: int = 0
    total: int = 0
    total_is_exact: bool = True

    @property
    def median_ms(self) -> float:
        return timing.median_ms(self.samples_ms)

    @property
    def p95_ms(self) -> float:
        return timing.p95_ms(self.samples_ms)

    @property
    def within_budget(self) -> bool:
        return self.p95_ms < LIST_QUERY_BUDGET_MS


@dataclass
class ListingResult:
    """Every query's timing on one database, and how long seeding it took."""

    backend: str
    rows: int
    seed_seconds: float = float("nan")
    timings: list[QueryTiming] = field(default_factory=list)

    @property
    def served_within_budget(self) -> bool:
        return all(t.within_budget for t in self.timings if t.query.served)


def bench_engine(backend: str, config: BenchConfig, workdir: Path) -> AbstractContextManager[Engine]:
    """The application's engine for ``backend``, on a database that belongs to the benchmark."""
    return scratch_engine(
        backend, sqlite_path=workdir / "listing.db", postgres_url=config.list_postgres_url, schema=BENCH_SCHEMA, keep=config.keep
    )


def position_cursor(session: Session, query: ListQuery, depth: int) -> store.PageCursor | None:
    """The cursor a client holds after reading ``depth`` matching tasks (unmeasured set-up)."""
    if depth <= 0:
        return None
    position = select(Task).order_by(col(Task.created_at).desc(), col(Task.id).desc()).offset(depth - 1).limit(1)
    if query.status is not None:
        position = position.where(col(Task.status) == query.status.value)
    if query.task_type is not None:
        position = position.where(col(Task.task_type) == query.task_type.value)
    task = session.exec(position).first()
    return store.PageCursor.after(task) if task is not None else None


def matching(session: Session, query: ListQuery) -> int:
    """How many tasks match the query's filters: an exact count, for set-up and the comparison row."""
    count = select(func.count()).select_from(Task)
    if query.status is not None:
        count = count.where(col(Task.status) == query.status.value)
    if query.task_type is not None:
        count = count.where(col(Task.task_type) == query.task_type.value)
    return int(session.exec(count).one())


def build_run(engine: Engine, query: ListQuery) -> Callable[[], tuple[int, int, bool]]:
    """The measured call for ``query``: returns (items on the page, total, total is exact)."""
    offset, after = query.skip, None
    with Session(engine) as session:
        matches = matching(session, query)
        depth = int(matches * query.depth)
        if query.by_offset:
            offset = depth
        elif depth:
            # depth = matches would be past the end: the last page starts one task before it.
            after = position_cursor(session, query, min(depth, matches - 1))

    def run() -> tuple[int, int, bool]:
        with Session(engine) as session:
            if query.exact_count:
                return 0, matching(session, query), True
            listing = store.list_tasks(
                session, status=query.status, task_type=query.task_type, limit=PAGE_SIZE, offset=offset, after=after
            )
            return len(listing.items), listing.total, listing.total_is_exact

    return run


def time_query(engine: Engine, query: ListQuery, repeats: int) -> QueryTiming:
    run = build_run(engine, query)
    timing = QueryTiming(query)
    for _ in range(WARMUP_RUNS):
        run()
    for _ in range(repeats):
        started = time.perf_counter()
        timing.items, timing.total, timing.total_is_exact = run()
        timing.samples_ms.append((time.perf_counter() - started) * 1000)
    return timing


def measure_listing(backend: str, config: BenchConfig, workdir: Path, announce: Callable[[str], None]) -> ListingResult:
    """Seed ``config.list_rows`` tasks in ``backend`` and time every query of :data:`LIST_QUERIES`."""
    result = ListingResult(backend=backend, rows=config.list_rows)
    with bench_engine(backend, config, workdir) as engine:
        announce(f"(c) listing on {backend}: seeding {config.list_rows:,} tasks …")
        started = time.perf_counter()
        seed_tasks(engine, config.list_rows)
        result.seed_seconds = time.perf_counter() - started
        announce(f"(c) listing on {backend}: {len(LIST_QUERIES)} queries × {config.list_repeats} runs …")
        for query in LIST_QUERIES:
            result.timings.append(time_query(engine, query, config.list_repeats))
    return result
