"""``python -m bench`` / ``make bench``: run the parts asked for, print the tables, optionally write JSON.

The run owns everything it starts: a private ``redis-server`` (never ``$REDIS_URL``: the
benchmark flushes its database between measurements), a temporary work folder with a fresh
SQLite file per measurement and the server logs, and every API and worker process. All of it
is stopped and removed at the end, whatever happened (``--keep`` keeps the folder).

A measurement that fails (a server that does not start, a drain that times out) is reported
with its log and the run goes on with the next one; the exit status is 1 if anything failed.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import fields, replace
from functools import partial
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from bench.config import DEFAULTS, QUICK, BenchConfig
from bench.dashboards import DASHBOARD_PHASE, REFRESH_SECONDS, measure_dashboards
from bench.drain import DrainResult, measure_drain
from bench.listing import measure_listing
from bench.machine import load_average, machine_facts
from bench.report import BenchReport, print_report, write_json
from bench.stats_query import measure_stats_query
from bench.submit import measure_phase
from phase5_scaling.monitoring.stats import parse_window
from shared.redis_server import PrivateRedis
from tasklab_cli.processes import PHASES

#: The environment variable the tests read a PostgreSQL URL from; part (c) uses the same server.
POSTGRES_URL_VARIABLE = "TEST_DATABASE_URL"

#: The phase Celery is measured against (phase 5's scaling target): its drain runs right after this phase's.
CELERY_PEER_OF_PHASE = 5

#: Width of the tables when the output goes to a file or a pipe (docs, CI logs) instead of a
#: terminal, whose own width rich uses: wide enough that no figure is wrapped or cut.
PIPED_OUTPUT_WIDTH = 170


def str_list(text: str) -> tuple[str, ...]:
    """``"24h,7d"`` → ``("24h", "7d")``."""
    return tuple(part.strip() for part in text.split(",") if part.strip())


def int_list(text: str) -> tuple[int, ...]:
    """``"1,2"`` → ``(1, 2)``; an empty string → ``()`` (skip that part)."""
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Measure, side by side on this machine: (a) POST /tasks throughput and p50/p99 latency "
        "of each phase against the framework's floor in the same server; (b) how fast 1 and 2 workers of phases 2 to 5 "
        "drain N no-op tasks, with their peak memory (phase 4 ÷ phase 3 prices monitoring), and Celery's prefork pool "
        "beside phase 5; (c) on request, how long GET /tasks' queries take on a table of "
        "--list-rows tasks, on SQLite and PostgreSQL; (d) on request, how long GET /stats takes on a table of "
        "--stats-rows tasks spread over each of --stats-spans, on both as well, and how long building its aggregates "
        f"from those rows takes; (e) on request, phase {DASHBOARD_PHASE}'s POST /tasks throughput alone and with "
        f"--dashboards N dashboards polling GET /stats every {REFRESH_SECONDS:.0f} s. Prints a table of figures and ratios.",
        epilog="Everything runs on loopback with a private redis-server and temporary SQLite files. "
        "--quick shrinks every number to a smoke test; an explicit option still wins over it. "
        "Only the list queries: --phases '' --drain-tasks 0 --list-rows 1000000; only /stats: "
        "--phases '' --drain-tasks 0 --stats-rows 1000000; only the dashboards: --phases '' --drain-tasks 0 "
        "--dashboards 10.",
    )
    # Every default is None here so that --quick can tell "not given" from "given".
    parser.add_argument(
        "--quick", action="store_true", help="tiny numbers: checks the machinery in seconds; the figures mean little"
    )
    parser.add_argument(
        "--phases",
        type=int_list,
        help=f"phases whose POST /tasks to measure, comma-separated, '' for none (default {','.join(map(str, DEFAULTS.phases))})",
    )
    parser.add_argument(
        "--requests", type=int, help=f"requests per route and phase, all rounds together (default {DEFAULTS.requests})"
    )
    parser.add_argument("--warmup", type=int, help=f"unmeasured requests per route first (default {DEFAULTS.warmup})")
    parser.add_argument("--concurrency", type=int, help=f"requests in flight at once (default {DEFAULTS.concurrency})")
    parser.add_argument("--rounds", type=int, help=f"alternating rounds the requests are split into (default {DEFAULTS.rounds})")
    parser.add_argument(
        "--time-cap",
        dest="time_cap_seconds",
        type=float,
        help=f"seconds at most per route and phase (default {DEFAULTS.time_cap_seconds:.0f})",
    )
    parser.add_argument(
        "--drain-tasks", type=int, help=f"no-op tasks to drain, 0 to skip part (b) (default {DEFAULTS.drain_tasks})"
    )
    parser.add_argument(
        "--drain-workers",
        type=int_list,
        help=f"worker counts to drain with (default {','.join(map(str, DEFAULTS.drain_workers))})",
    )
    parser.add_argument(
        "--drain-phases",
        type=int_list,
        help=f"phases whose workers drain, '' for none (default {','.join(map(str, DEFAULTS.drain_phases))})",
    )
    parser.add_argument(
        "--drain-timeout",
        dest="drain_timeout_seconds",
        type=float,
        help=f"seconds a drain may take (default {DEFAULTS.drain_timeout_seconds:.0f})",
    )
    parser.add_argument(
        "--no-celery",
        dest="celery",
        action="store_false",
        default=None,
        help="skip the Celery prefork drains (one per --drain-workers count) that otherwise follow phase 5's "
        "drains, for the phase 5 ÷ Celery ratios",
    )
    parser.add_argument(
        "--list-rows",
        type=int,
        help="(c) seed a task table of this many rows and time GET /tasks' queries on it (default 0: skip)",
    )
    parser.add_argument("--list-repeats", type=int, help=f"measured runs of each list query (default {DEFAULTS.list_repeats})")
    parser.add_argument(
        "--list-postgres",
        dest="list_postgres_url",
        default=os.environ.get(POSTGRES_URL_VARIABLE),
        help="PostgreSQL URL to time the list queries on too, in a schema of its own, dropped after "
        f"(default ${POSTGRES_URL_VARIABLE}; unset: SQLite only)",
    )
    parser.add_argument(
        "--stats-rows", type=int, help="(d) seed a task table of this many rows and time GET /stats on it (default 0: skip)"
    )
    parser.add_argument(
        "--stats-repeats", type=int, help=f"measured runs of /stats per window (default {DEFAULTS.stats_repeats})"
    )
    parser.add_argument(
        "--stats-windows",
        type=str_list,
        help=f"windows to time /stats with (default {','.join(DEFAULTS.stats_windows)})",
    )
    parser.add_argument(
        "--stats-spans",
        type=str_list,
        help="how far back the seeded history reaches, up to now; one table seeded, built and timed per span "
        f"(default {','.join(DEFAULTS.stats_spans)})",
    )
    parser.add_argument(
        "--stats-postgres",
        dest="stats_postgres_url",
        default=os.environ.get(POSTGRES_URL_VARIABLE),
        help="PostgreSQL URL to time /stats on too, in a schema of its own, dropped after "
        f"(default ${POSTGRES_URL_VARIABLE}; unset: SQLite only)",
    )
    parser.add_argument(
        "--dashboards",
        type=int,
        help=f"(e) time phase {DASHBOARD_PHASE}'s POST /tasks alone and with this many dashboards polling GET /stats "
        f"every {REFRESH_SECONDS:.0f} s (the dashboard target: 10; default 0: skip)",
    )
    parser.add_argument(
        "--dashboard-requests",
        type=int,
        help=f"(e) POST /tasks requests per condition, all rounds together (default {DEFAULTS.dashboard_requests})",
    )
    parser.add_argument(
        "--json", dest="json_path", type=Path, help="also write the figures, ratios and machine facts to this JSON file"
    )
    parser.add_argument(
        "--keep", action="store_true", default=None, help="keep the work folder (databases, server and worker logs)"
    )
    return parser.parse_args(argv)


def config_from_args(args: argparse.Namespace) -> BenchConfig:
    """The preset (defaults or --quick) with every option the user gave on top."""
    base = QUICK if args.quick else DEFAULTS
    given: dict[str, Any] = {
        f.name: getattr(args, f.name) for f in fields(BenchConfig) if getattr(args, f.name, None) is not None
    }
    config = replace(base, **given)
    unknown = [n for n in (*config.phases, *config.drain_phases) if n not in PHASES]
    if unknown:
        raise SystemExit(f"unknown phase(s) {unknown}; choose from {sorted(PHASES)}")
    if min(config.requests, config.concurrency, config.rounds) < 1 or config.warmup < 0 or config.drain_tasks < 0:
        raise SystemExit("--requests, --concurrency and --rounds must be at least 1; --warmup and --drain-tasks at least 0")
    if any(n < 1 for n in config.drain_workers):
        raise SystemExit("--drain-workers must be positive")
    if any(not PHASES[n].has_worker for n in config.drain_phases):
        raise SystemExit("--drain-phases: only phases with a worker (2 on) drain a queue")
    if config.stats_rows < 0 or config.stats_repeats < 1:
        raise SystemExit("--stats-rows must be at least 0 and --stats-repeats at least 1")
    for option, values in (("--stats-windows", config.stats_windows), ("--stats-spans", config.stats_spans)):
        try:
            for value in values:
                parse_window(value)
        except ValueError as exc:
            raise SystemExit(f"{option}: {exc}") from None
    if config.stats_rows > 0 and not config.stats_spans:
        raise SystemExit("--stats-spans: give at least one span")
    if config.dashboards < 0 or config.dashboard_requests < 1:
        raise SystemExit("--dashboards must be at least 0 and --dashboard-requests at least 1")
    if config.list_rows < 0 or config.list_repeats < 1:
        raise SystemExit("--list-rows must be at least 0 and --list-repeats at least 1")
    return config


def make_progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        # The progress bar redraws from a thread of this process, which also generates the load:
        # a few redraws a second are plenty and cost the client next to nothing.
        refresh_per_second=4,
    )


def attempt(report: BenchReport, console: Console, what: str, measure: Callable[[], Any]) -> Any:
    """Run one measurement; on failure record why and go on with the next one."""
    try:
        return measure()
    except Exception as exc:  # one broken measurement must not hide the others' figures
        report.failures.append(f"{what}: {exc}")
        console.print(f"[red]{what} failed[/red] (details at the end)")
        return None


def measure_peer_drain(config: BenchConfig, workdir: Path, redis_url: str, progress: Progress, processes: int) -> DrainResult:
    """Celery's drain; imported here, so that a run without the ``bench`` extra needs only ``--no-celery``."""
    if importlib.util.find_spec("celery") is None:
        raise RuntimeError("Celery is not installed: pip install -e '.[bench]', or pass --no-celery")
    from bench.celery_peer import measure_celery_drain

    return measure_celery_drain(config, workdir, redis_url, progress, processes)


def run_drains(
    report: BenchReport, config: BenchConfig, console: Console, workdir: Path, redis_url: str, progress: Progress
) -> None:
    """Part (b): each phase with each worker count; Celery right after phase 5, so both meet the same machine load."""

    def drain(who: str, what: str, measure: Callable[[], DrainResult]) -> None:
        console.print(f"(b) drain: {config.drain_tasks} no-op tasks, {who} …")
        result = attempt(report, console, what, measure)
        if result is not None:
            report.drain.append(result)

    for number in config.drain_phases:
        for workers in config.drain_workers:
            drain(
                f"phase {number}, {workers} worker(s)",
                f"phase {number} drain with {workers} worker(s)",
                partial(measure_drain, number, workers, config, workdir, redis_url, progress),
            )
        if number == CELERY_PEER_OF_PHASE and config.celery:
            for processes in config.drain_workers:
                drain(
                    f"Celery's prefork pool, {processes} process(es)",
                    f"Celery drain with {processes} process(es)",
                    partial(measure_peer_drain, config, workdir, redis_url, progress, processes),
                )


def run(config: BenchConfig, console: Console) -> BenchReport:
    started = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="tasklab-bench-"))
    needs_redis = (
        any(PHASES[n].has_worker for n in config.phases)
        or (config.drain_tasks > 0 and bool(config.drain_workers) and bool(config.drain_phases))
        or config.stats_rows > 0  # part (d) reads queue depth and workers, as /stats does
        or config.dashboards > 0  # part (e) runs phase 4's API, which needs its Redis
    )
    with ExitStack() as cleanup:
        if not config.keep:
            cleanup.callback(shutil.rmtree, workdir, ignore_errors=True)
        redis_server = PrivateRedis().start() if needs_redis else None
        if redis_server is not None:
            cleanup.callback(redis_server.cleanup)
        redis_url = redis_server.url if redis_server else None
        report = BenchReport(config=config, machine=machine_facts(redis_url, workdir))

        with make_progress(console) as progress:
            for number in config.phases:
                console.print(f"(a) phase {number}: POST /tasks vs the floor …")
                outcome = attempt(
                    report,
                    console,
                    f"phase {number} submit",
                    partial(measure_phase, number, config, workdir, redis_url, progress),
                )
                if outcome is not None:
                    report.submit.append(outcome)
            if config.drain_tasks > 0 and redis_url is not None:
                run_drains(report, config, console, workdir, redis_url, progress)
            if config.list_rows > 0:
                backends = ["sqlite", "postgresql"] if config.list_postgres_url else ["sqlite"]
                for backend in backends:
                    listing = attempt(
                        report,
                        console,
                        f"listing on {backend}",
                        partial(measure_listing, backend, config, workdir, console.print),
                    )
                    if listing is not None:
                        report.listing.append(listing)
            if config.stats_rows > 0 and redis_url is not None:
                backends = ["sqlite", "postgresql"] if config.stats_postgres_url else ["sqlite"]
                for backend in backends:
                    for span in config.stats_spans:
                        measured = attempt(
                            report,
                            console,
                            f"/stats on {backend}, span {span}",
                            partial(measure_stats_query, backend, span, config, workdir, redis_url, console.print, progress),
                        )
                        if measured is not None:
                            report.stats_query.append(measured)
            if config.dashboards > 0 and redis_url is not None:
                console.print(
                    f"(e) phase {DASHBOARD_PHASE}: POST /tasks alone and with {config.dashboards} dashboards polling /stats …"
                )
                watched = attempt(
                    report,
                    console,
                    "POST /tasks with dashboards",
                    partial(measure_dashboards, config, workdir, redis_url, progress),
                )
                if watched is not None:
                    report.dashboards = watched

    report.duration_seconds = time.perf_counter() - started
    report.load_average_at_end = load_average()
    if config.keep:
        console.print(f"work folder kept: {workdir}")
    return report


def main(argv: list[str] | None = None) -> int:
    config = config_from_args(parse_args(argv))
    console = Console()
    if not console.is_terminal:
        console = Console(width=PIPED_OUTPUT_WIDTH)
    report = run(config, console)
    print_report(report, console)
    if config.json_path is not None:
        write_json(report, config.json_path)
        console.print(f"figures written to {config.json_path}")
    return 0 if report.ok else 1
