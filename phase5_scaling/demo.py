"""``python -m phase5_scaling.demo --tasks 500 --workers 3``: priorities and a pool, watched live.

It starts a private Redis (unless ``REDIS_URL`` is set), a fresh SQLite database (unless
``DATABASE_URL`` is set: then the demo's tasks stay there for ``manage_db show``), the phase 5 API
and one pool of ``--workers`` processes; submits ``--tasks`` random tasks of every type and of
random priorities; shows live progress per priority level and per pool process; prints how long
each level waited (mean and p95: the higher the level, the shorter the wait) and how the work was
shared; stops everything. Exit status 0 means every task completed.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from shared.tasks import CATALOG

from .demo_stack import DemoStack
from .scaling.jobs import PRIORITIES

DEFAULT_TASKS = 500
DEFAULT_WORKERS = 3
#: Simulated durations are 1–5 s seeds; a hundredth keeps 500 tasks well under a minute.
DEFAULT_TIME_SCALE = 0.01
DEFAULT_TIMEOUT_SECONDS = 120.0
DEFAULT_SEED = 5
POLL_INTERVAL_SECONDS = 0.25
PAGE_SIZE = 100
FINAL = ("completed", "failed", "cancelled")
#: The p95 needs a few samples to mean anything.
MIN_SAMPLES_FOR_P95 = 20


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m phase5_scaling.demo",
        description="Phase 5 end to end: start Redis, the API and a pool of worker processes, submit random tasks "
        "of random priorities, watch each level and each process live, and see that higher levels wait less.",
        epilog="Example: python -m phase5_scaling.demo --tasks 500 --workers 3  (make demo runs exactly this)",
    )
    parser.add_argument("--tasks", type=int, default=DEFAULT_TASKS, help=f"tasks to submit (default {DEFAULT_TASKS})")
    parser.add_argument("--workers", type=int, default=DEFAULT_WORKERS, help=f"processes in the pool (default {DEFAULT_WORKERS})")
    parser.add_argument(
        "--time-scale", type=float, default=DEFAULT_TIME_SCALE, help=f"TASK_TIME_SCALE (default {DEFAULT_TIME_SCALE})"
    )
    parser.add_argument(
        "--seed", type=int, default=DEFAULT_SEED, help=f"random seed for types and priorities (default {DEFAULT_SEED})"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_SECONDS,
        help=f"give up after this many seconds (default {DEFAULT_TIMEOUT_SECONDS:.0f})",
    )
    args = parser.parse_args(argv)
    if args.tasks < 1 or args.workers < 1 or args.time_scale < 0:
        parser.error("--tasks and --workers must be at least 1, --time-scale at least 0")
    return args


def submit_random(client: httpx.Client, count: int, rng: random.Random) -> dict[str, int]:
    """Submit ``count`` tasks of random types and priorities; return id → priority."""
    definitions = list(CATALOG.items())
    submitted: dict[str, int] = {}
    for _ in range(count):
        task_type, definition = rng.choice(definitions)
        priority = rng.choice(PRIORITIES)
        response = client.post("/tasks", json={"task_type": task_type.value, "payload": definition.example, "priority": priority})
        response.raise_for_status()
        submitted[response.json()["id"]] = priority
    return submitted


def fetch_submitted(client: httpx.Client, submitted: dict[str, int]) -> list[dict[str, Any]]:
    """The submitted tasks, newest first page by page with the keyset cursor.

    They are the newest in the store, so the pages stop once every one is seen: a ``DATABASE_URL``
    that already holds a million tasks costs what an empty one does.
    """
    found: dict[str, dict[str, Any]] = {}
    params: dict[str, Any] = {"limit": PAGE_SIZE}
    while True:
        page = client.get("/tasks", params=params).json()
        found.update((task["id"], task) for task in page["items"] if task["id"] in submitted)
        if len(found) == len(submitted) or not page.get("next_cursor"):
            return list(found.values())
        params = {"limit": PAGE_SIZE, "cursor": page["next_cursor"]}


def watch(client: httpx.Client, submitted: dict[str, int], console: Console, timeout: float) -> list[dict[str, Any]]:
    """Live bars per priority level and per pool process, until every task is final."""
    columns = (TextColumn("{task.description:<14}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    per_level = Counter(submitted.values())
    with Progress(*columns, console=console) as progress:
        levels: dict[int, TaskID] = {p: progress.add_task(f"priority {p}", total=per_level[p]) for p in PRIORITIES}
        processes: dict[str, TaskID] = {}
        deadline = time.monotonic() + timeout
        while True:
            tasks = fetch_submitted(client, submitted)
            done = [t for t in tasks if t["status"] in FINAL]
            for priority, bar in levels.items():
                progress.update(bar, completed=sum(t["priority"] == priority for t in done))
            for name, count in sorted(Counter(t["worker"] for t in done if t["worker"]).items()):
                if name not in processes:
                    processes[name] = progress.add_task(f"  {name}", total=len(submitted))
                progress.update(processes[name], completed=count)
            if len(done) == len(submitted):
                return tasks
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {len(done)} of {len(submitted)} tasks finished within {timeout:.0f} s")
            time.sleep(POLL_INTERVAL_SECONDS)


def wait_seconds(task: dict[str, Any]) -> float | None:
    if not task["started_at"]:
        return None
    return (datetime.fromisoformat(task["started_at"]) - datetime.fromisoformat(task["created_at"])).total_seconds()


def summarize(tasks: list[dict[str, Any]], console: Console) -> bool:
    """The wait per level (mean, p95) and the share of each process; whether all completed."""
    table = Table(title="Wait per priority level (created → started)")
    for column in ("priority", "tasks", "completed", "mean wait", "p95 wait"):
        table.add_column(column, justify="right")
    for priority in PRIORITIES:
        group = [t for t in tasks if t["priority"] == priority]
        waits = sorted(w for t in group if (w := wait_seconds(t)) is not None)
        p95 = statistics.quantiles(waits, n=20)[-1] if len(waits) >= MIN_SAMPLES_FOR_P95 else (waits[-1] if waits else None)
        table.add_row(
            str(priority),
            str(len(group)),
            str(sum(t["status"] == "completed" for t in group)),
            f"{statistics.mean(waits):.2f} s" if waits else "-",
            f"{p95:.2f} s" if p95 is not None else "-",
        )
    console.print(table)
    shares = Counter(t["worker"] for t in tasks if t["worker"])
    console.print("tasks per pool process: " + ", ".join(f"{name} {count}" for name, count in sorted(shares.items())))
    return all(t["status"] == "completed" for t in tasks)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Piped into a file or CI log, rich would assume 80 columns and squeeze the table.
    console = Console() if sys.stdout.isatty() else Console(width=110)
    workdir = Path(tempfile.mkdtemp(prefix="tasklab-demo5-"))
    # The store you name, so that `manage_db show` finds the demo's tasks afterwards; a throwaway
    # SQLite file only when DATABASE_URL is unset. Redis likewise: REDIS_URL, or a private one.
    database_url = os.environ.get("DATABASE_URL") or f"sqlite:///{workdir / 'demo.db'}"
    console.rule("tasklab demo · phase 5 (phase5_scaling): priorities and a worker pool")
    env = {"TASK_TIME_SCALE": str(args.time_scale), "METRICS_DIR": str(workdir / "metrics")}
    stack = DemoStack(workers=args.workers, database_url=database_url, log_dir=workdir, env=env)
    started = time.monotonic()
    with stack, httpx.Client(base_url=stack.base_url, timeout=10) as client:
        console.print(
            f"API {client.base_url} · Redis {stack.redis_url} · a pool of {args.workers} processes · database {database_url}"
        )
        submitted = submit_random(client, args.tasks, random.Random(args.seed))
        console.print(
            f"submitted {len(submitted)} tasks: "
            + ", ".join(f"priority {p}: {n}" for p, n in sorted(Counter(submitted.values()).items(), reverse=True))
        )
        try:
            tasks = watch(client, submitted, console, args.timeout)
        except TimeoutError as exc:
            console.print(f"[red]{exc}[/]; logs in {workdir}")
            return 1
    elapsed = time.monotonic() - started
    all_completed = summarize(tasks, console)
    console.print(f"{len(tasks)} tasks in {elapsed:.1f} s, TASK_TIME_SCALE={args.time_scale}; everything stopped.")
    if all_completed:
        console.print("[bold green]every task completed[/]")
        return 0
    console.print(f"[bold red]some tasks did not complete[/]; logs in {workdir}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
