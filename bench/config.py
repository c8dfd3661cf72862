"""Every number the benchmark uses, in one place: the defaults, the ``--quick`` preset, the body.

The defaults are sized for a 2-core machine: the whole run takes about two minutes, enough
requests per figure that p99 rests on a few dozen samples, and few enough that the run stays
a command people actually type. ``--quick`` shrinks everything to a smoke test of the
machinery (its figures mean little).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

#: What every benchmark request sends: the cheapest task there is, so the figures measure the
#: system around a task (HTTP, validation, database, queue), not the task.
NOOP_TASK: dict[str, Any] = {"task_type": "noop", "payload": {}}

#: The status every benchmarked endpoint answers with; anything else counts as an error.
ACCEPTED = 202

#: Environment of every phase process the benchmark starts: simulated durations scaled to 0.
PHASE_ENV: dict[str, str] = {"TASK_TIME_SCALE": "0"}


@dataclass(frozen=True)
class BenchConfig:
    """One run's parameters; :mod:`bench.cli` maps each field to an option of the same name."""

    #: Phases whose ``POST /tasks`` is measured (part a). 3 and 4 side by side price monitoring.
    phases: tuple[int, ...] = (1, 2, 3, 4, 5)
    #: Requests per endpoint and phase, summed over all rounds.
    requests: int = 2000
    #: Requests per endpoint before measuring: connection pools, thread pool, caches warm up.
    warmup: int = 200
    #: Requests in flight at once (a closed loop: each client sends its next on an answer).
    concurrency: int = 16
    #: Each endpoint's requests are split into rounds that alternate between endpoints, so a
    #: burst of load from another program on the machine hits every endpoint, not just one.
    rounds: int = 4
    #: Upper bound on the time spent measuring one endpoint of one phase (all rounds).
    time_cap_seconds: float = 30.0
    #: Requests per endpoint sent by a single client, one at a time, after the rounds: the
    #: service time without queueing. Under the loaded rounds, latency is mostly waiting in
    #: line (Little's law: latency ≈ concurrency ÷ throughput), so a latency promise such as
    #: "POST answers within 50 ms" is checked on both.
    single_client_requests: int = 200
    #: No-op tasks enqueued for the drain (part b); 0 skips the drain.
    drain_tasks: int = 500
    #: Worker process counts to drain with, one measurement each.
    drain_workers: tuple[int, ...] = (1, 2)
    #: Phases whose workers drain (part b), each with every count of ``drain_workers``.
    drain_phases: tuple[int, ...] = (2, 3, 4, 5)
    #: A drain that has not completed every task by then is reported as failed.
    drain_timeout_seconds: float = 180.0
    #: Drain the same tasks with Celery's prefork pool, with each count of ``drain_workers``,
    #: right after phase 5's drains, when phase 5 is among ``drain_phases``: the scaling target measures
    #: phase 5 against it in the same run (:mod:`bench.celery_peer`). ``--no-celery`` turns it off.
    celery: bool = True
    #: How often the drain counts completed rows in the database.
    drain_poll_seconds: float = 0.05
    #: How long phase 1 may take to finish the background tasks of one round (a few hundred
    #: no-op tasks take well under a second; longer means the server is stuck).
    settle_timeout_seconds: float = 20.0
    #: Tasks seeded for part (c), the ``GET /tasks`` query times; 0 skips it (seeding a
    #: million rows takes about half a minute per database).
    list_rows: int = 0
    #: Measured runs of each list query, after a few unmeasured ones.
    list_repeats: int = 20
    #: A PostgreSQL server to measure part (c) on as well, besides SQLite; the benchmark works
    #: in a schema of its own there (``tasklab_bench``) and drops it at the end.
    list_postgres_url: str | None = None
    #: Tasks seeded for part (d), the ``GET /stats`` times; 0 skips it (seeding a million rows
    #: takes about half a minute per database and span, building the aggregates from them as long).
    stats_rows: int = 0
    #: Measured calls of ``collect_stats`` per window, after a few unmeasured ones.
    stats_repeats: int = 30
    #: The windows measured: the default first, then wider ones (the read covers any window
    #: with a few dozen periods, so their cost should not grow with the tasks they hold).
    stats_windows: tuple[str, ...] = ("1h", "24h", "7d")
    #: How far back the seeded history of part (d) reaches (it ends at the wall clock): the same
    #: rows over a day, then over a week. One table seeded, built and timed per span.
    stats_spans: tuple[str, ...] = ("24h", "7d")
    #: A PostgreSQL server to measure part (d) on as well; the benchmark works in a schema of its
    #: own there (``tasklab_bench_stats``) and drops it at the end.
    stats_postgres_url: str | None = None
    #: Part (e), on request: ``POST /tasks`` throughput of phase 4 alone, then with this many
    #: dashboards polling ``GET /stats`` every 2 s (the dashboard target is 10); 0 skips it.
    dashboards: int = 0
    #: ``POST /tasks`` requests per condition of part (e) (alone, with dashboards), all rounds
    #: together, at ``concurrency`` clients; the rounds alternate the two conditions. Each round
    #: should last several refreshes (2 s) of the dashboards: at about 300 req/s, 6,000 requests
    #: in 4 rounds last 5 s each.
    dashboard_requests: int = 6000
    #: Where to write the figures as JSON (None: do not write).
    json_path: Path | None = None
    #: Keep the work folder (databases, server logs) instead of deleting it.
    keep: bool = False

    @property
    def requests_per_round(self) -> int:
        return max(1, -(-self.requests // self.rounds))  # ceiling division

    @property
    def time_cap_per_round(self) -> float:
        return self.time_cap_seconds / self.rounds


DEFAULTS = BenchConfig()

#: ``--quick``: a smoke test of the whole machinery in a few seconds of measuring.
QUICK = replace(
    DEFAULTS,
    requests=60,
    warmup=10,
    rounds=1,
    single_client_requests=20,
    time_cap_seconds=10.0,
    drain_tasks=20,
    drain_timeout_seconds=60.0,
    stats_repeats=5,
    stats_spans=("24h",),
    dashboard_requests=200,
)
