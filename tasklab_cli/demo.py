"""``make demo``: the phase 2 system end to end, on this machine, in about half a minute.

It starts a private Redis (unless ``REDIS_URL`` is set), a fresh SQLite database, the phase's
API and workers as real processes; submits a batch of every task type over HTTP; shows them
moving to ``completed`` with a live progress bar; prints a summary table (counts, results,
timings); checks each result against the catalog's documented one; and stops everything.
Exit status 0 means every task completed with the right result.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path
from statistics import mean
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from shared.tasks import CATALOG
from tasklab_cli.processes import PHASES, phase
from tasklab_cli.stack import PhaseStack

DEFAULT_PHASE = 2
DEFAULT_PER_TYPE = 3
DEFAULT_WORKERS = 2
#: Simulated durations are 1–5 s seeds; a tenth keeps the demo short but visibly concurrent.
DEFAULT_TIME_SCALE = 0.1
DEFAULT_TIMEOUT_SECONDS = 180.0
POLL_INTERVAL_SECONDS = 0.2
PAGE_SIZE = 100
FINAL = ("completed", "failed", "cancelled")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tasklab_cli.demo",
        description="Run a phase end to end: start Redis, the API and workers, submit every task type, "
        "watch them complete, print a summary, stop everything.",
    )
    parser.add_argument(
        "--phase",
        default=str(DEFAULT_PHASE),
        choices=[str(n) for n in sorted(PHASES) if PHASES[n].has_worker],
        help=f"phase to demo (default {DEFAULT_PHASE})",
    )
    parser.add_argument(
        "--per-type", type=int, default=DEFAULT_PER_TYPE, help=f"tasks submitted per task type (default {DEFAULT_PER_TYPE})"
    )
    parser.add_argument("--workers", type=int, default=DEFAULT_WORKERS, help=f"worker processes (default {DEFAULT_WORKERS})")
    parser.add_argument(
        "--time-scale",
        type=float,
        default=DEFAULT_TIME_SCALE,
        help=f"TASK_TIME_SCALE for simulated work (default {DEFAULT_TIME_SCALE})",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_SECONDS,
        help=f"give up after this many seconds (default {DEFAULT_TIMEOUT_SECONDS:.0f})",
    )
    return parser.parse_args(argv)


def submit_batch(client: httpx.Client, per_type: int, progress: Progress) -> dict[str, str]:
    """Submit ``per_type`` tasks of every catalog type, interleaved; return id → task type."""
    submitted: dict[str, str] = {}
    bar = progress.add_task("submitting", total=per_type * len(CATALOG), status="")
    for round_number in range(per_type):
        for task_type, definition in CATALOG.items():
            response = client.post(
                "/tasks", json={"task_type": task_type.value, "payload": definition.example, "priority": 1 + round_number % 5}
            )
            response.raise_for_status()
            submitted[response.json()["id"]] = task_type.value
            progress.advance(bar)
    return submitted


def fetch_all(client: httpx.Client) -> list[dict[str, Any]]:
    """Every task, page by page (the API caps a page at 100)."""
    tasks: list[dict[str, Any]] = []
    while True:
        page = client.get("/tasks", params={"limit": PAGE_SIZE, "offset": len(tasks)}).json()
        tasks += page["items"]
        if len(tasks) >= page["total"] or not page["items"]:
            return tasks


def watch_until_done(client: httpx.Client, submitted: dict[str, str], progress: Progress, timeout: float) -> list[dict[str, Any]]:
    bar = progress.add_task("processing", total=len(submitted), status="")
    deadline = time.monotonic() + timeout
    while True:
        tasks = [t for t in fetch_all(client) if t["id"] in submitted]
        counts = Counter(t["status"] for t in tasks)
        done = sum(counts[s] for s in FINAL)
        progress.update(bar, completed=done, status="  ".join(f"{s} {n}" for s, n in sorted(counts.items())))
        if done == len(submitted):
            return tasks
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {done} of {len(submitted)} tasks finished within {timeout:.0f} s: {dict(counts)}")
        time.sleep(POLL_INTERVAL_SECONDS)


def seconds_between(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def summarize(tasks: list[dict[str, Any]], console: Console) -> bool:
    """Print one row per task type; return whether every task completed with the right result."""
    by_type: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for task in tasks:
        by_type[task["task_type"]].append(task)

    table = Table(title="Summary (wait: created → started, run: started → completed; means)")
    table.add_column("task type", no_wrap=True)
    for column in ("tasks", "done", "failed"):
        table.add_column(column, justify="right", min_width=len(column))
    table.add_column("result (first)", no_wrap=True, overflow="ellipsis", max_width=26)
    table.add_column("right?", min_width=6)
    for column in ("wait", "run"):
        table.add_column(column, justify="right", no_wrap=True)
    all_right = True
    for task_type, definition in CATALOG.items():
        group = by_type.get(task_type.value, [])
        completed = [t for t in group if t["status"] == "completed"]
        right = len(completed) == len(group) and all(t["result"] == definition.example_result for t in completed)
        all_right &= right
        waits = [w for t in group if (w := seconds_between(t["created_at"], t["started_at"])) is not None]
        runs = [r for t in group if (r := seconds_between(t["started_at"], t["completed_at"])) is not None]
        first = json.dumps(completed[0]["result"], separators=(",", ":")) if completed else (group[0]["error"] if group else "")
        table.add_row(
            task_type.value,
            str(len(group)),
            str(len(completed)),
            str(sum(t["status"] == "failed" for t in group)),
            first,
            "[green]yes[/]" if right else "[red]NO[/]",
            f"{mean(waits) * 1000:.0f} ms" if waits else "-",
            f"{mean(runs) * 1000:.0f} ms" if runs else "-",
        )
    console.print(table)
    return all_right


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    chosen = phase(args.phase)
    # Piped into a file or CI log, rich would assume 80 columns and squeeze the table.
    console = Console() if sys.stdout.isatty() else Console(width=110)
    workdir = Path(tempfile.mkdtemp(prefix="tasklab-demo-"))
    database_url = f"sqlite:///{workdir / 'demo.db'}"
    console.rule(f"tasklab demo · phase {chosen.number} ({chosen.package})")
    console.print(f"starting Redis, the API and {args.workers} worker(s); database {database_url}")

    stack = PhaseStack(
        chosen,
        workers=args.workers,
        database_url=database_url,
        log_dir=workdir,
        extra_env={"TASK_TIME_SCALE": str(args.time_scale)},
    )
    started = time.monotonic()
    with stack, httpx.Client(base_url=stack.api.base_url if stack.api else "", timeout=10) as client:
        redis_origin = f"private, {stack.private_redis.binary}" if stack.private_redis else "REDIS_URL"
        console.print(
            f"API {client.base_url} · Redis {stack.redis_url} ({redis_origin}) · "
            f"workers {[w.pid for w in stack.worker_processes]}"
        )
        columns = (
            TextColumn("{task.description:<11}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[status]}"),
        )
        with Progress(*columns, console=console) as progress:
            submitted = submit_batch(client, args.per_type, progress)
            try:
                tasks = watch_until_done(client, submitted, progress, args.timeout)
            except TimeoutError as exc:
                console.print(f"[red]{exc}[/]; logs in {workdir}")
                return 1
    elapsed = time.monotonic() - started

    all_right = summarize(tasks, console)
    console.print(
        f"{len(tasks)} tasks in {elapsed:.1f} s with {args.workers} worker(s), "
        f"TASK_TIME_SCALE={args.time_scale}; everything stopped."
    )
    if all_right:
        console.print("[bold green]every task completed with the documented result[/]")
        return 0
    console.print(f"[bold red]some tasks did not complete with the documented result[/]; logs in {workdir}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
