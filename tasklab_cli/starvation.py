"""``python -m tasklab_cli.starvation --phase N``: do slow tasks slow down the API? Measured, not told.

Chapter 1 says phase 1's tasks starve its API, because they run on the threads that serve
requests; chapter 2 says phase 2's queue ends that. This is the measurement behind both
claims, so a reader can repeat it instead of taking the chapters' word for it:

1. start the phase for real, as ``make run`` would (:class:`~tasklab_cli.stack.PhaseStack`):
   its API under uvicorn and, for a phase with a queue, its workers and a private Redis, on a
   fresh SQLite database in a temporary directory, with ``TASK_TIME_SCALE=1``;
2. time sequential ``GET /health`` and ``GET /tasks/{id}`` on the idle server: the baseline;
3. start two probes, one per route, each sending one GET every 0.25 s, as a load balancer's
   health check and a polling client would; at t=1 s, POST 60 five-second ``ai_summarization``
   tasks at once (one thread each);
4. stop probing when every accepted task has finished, or at ``--duration``; print each route's
   latencies, the slowest probe of every 5 s window (when it hurt, and when it recovered) and
   where the tasks ended up;
5. stop everything it started, also on Ctrl-C or SIGTERM.

It exits 0 whatever the figures are: it measures, it does not judge. (1 means one of the
phase's processes died during the run; 130, that it was interrupted.)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from statistics import median
from typing import Any

import httpx

from shared.tasks import CATALOG, TaskType
from tasklab_cli.demo import FINAL, fetch_all
from tasklab_cli.processes import PHASES, Phase, phase
from tasklab_cli.run import stop_on_sigterm
from tasklab_cli.stack import PhaseStack

#: The slow task of the experiment, and the instant one whose row the ``/tasks/{id}`` probe reads.
SLOW_TASK = TaskType.AI_SUMMARIZATION
TARGET_TASK = TaskType.NOOP
HEALTH = "GET /health"
ONE_TASK = "GET /tasks/{id}"
SUBMIT = "POST /tasks"
#: Long enough to see a request wait several seconds for a thread, instead of cutting it off.
REQUEST_TIMEOUT_SECONDS = 60.0
#: How often the tool asks the API where the tasks are, to stop when all have finished.
WATCH_INTERVAL_SECONDS = 0.5
#: Statuses always shown in the last line, in a task's order of life; others only when present.
SHOWN_STATUSES = ("pending", "running", "completed", "failed")

DEFAULT_IDLE_REQUESTS = 20
DEFAULT_TASKS = 60
DEFAULT_SUBMIT_AT = 1.0
DEFAULT_PROBE_INTERVAL = 0.25
DEFAULT_DURATION = 20.0
DEFAULT_WINDOW = 5.0
DEFAULT_TIME_SCALE = 1.0
DEFAULT_WORKERS = 1


def positive(kind: Callable[[str], float]) -> Callable[[str], float]:
    """An argparse type: ``kind`` (int or float), refusing zero and negative values."""

    def parse(text: str) -> float:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be more than 0, not {text}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its error messages
    return parse


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tasklab_cli.starvation",
        description="Start a phase (its API, and for a queue phase its workers and a private Redis), time "
        "GET /health and GET /tasks/{id} idle, then again while many slow tasks are submitted at once; "
        "print the latencies and stop everything. Chapters 1 and 2 show its output for phases 1 and 2.",
        epilog="It uses its own Redis and a throwaway SQLite database: REDIS_URL and DATABASE_URL are "
        "ignored. The defaults are the chapters' run: at most 20 s (--duration) after a few seconds of start-up.",
    )
    parser.add_argument("--phase", required=True, choices=[str(n) for n in sorted(PHASES)], help="which phase to measure")
    parser.add_argument(
        "--workers",
        type=positive(int),
        default=DEFAULT_WORKERS,
        metavar="N",
        help=f"worker processes, for a phase with a queue (default {DEFAULT_WORKERS})",
    )
    parser.add_argument(
        "--idle-requests",
        type=positive(int),
        default=DEFAULT_IDLE_REQUESTS,
        metavar="N",
        help=f"sequential requests per route on the idle server (default {DEFAULT_IDLE_REQUESTS})",
    )
    parser.add_argument(
        "--tasks",
        type=positive(int),
        default=DEFAULT_TASKS,
        metavar="N",
        help=f"{SLOW_TASK.value} tasks POSTed at once (default {DEFAULT_TASKS})",
    )
    parser.add_argument(
        "--submit-at",
        type=float,
        default=DEFAULT_SUBMIT_AT,
        metavar="SECONDS",
        help=f"seconds after the probes start that the tasks are POSTed (default {DEFAULT_SUBMIT_AT:g})",
    )
    parser.add_argument(
        "--probe-interval",
        type=positive(float),
        default=DEFAULT_PROBE_INTERVAL,
        metavar="SECONDS",
        help=f"seconds between two GETs of one probe (default {DEFAULT_PROBE_INTERVAL:g})",
    )
    parser.add_argument(
        "--duration",
        type=positive(float),
        default=DEFAULT_DURATION,
        metavar="SECONDS",
        help="stop probing this many seconds after the probes start, or sooner once every task has "
        f"finished (default {DEFAULT_DURATION:g})",
    )
    parser.add_argument(
        "--window",
        type=positive(float),
        default=DEFAULT_WINDOW,
        metavar="SECONDS",
        help=f"seconds per row of the slowest-probe table (default {DEFAULT_WINDOW:g})",
    )
    parser.add_argument(
        "--time-scale",
        type=float,
        default=DEFAULT_TIME_SCALE,
        metavar="FACTOR",
        help=f"TASK_TIME_SCALE: {SLOW_TASK.value} takes 5 s times this (default {DEFAULT_TIME_SCALE:g})",
    )
    args = parser.parse_args(argv)
    if args.submit_at < 0 or args.time_scale < 0:
        parser.error("--submit-at and --time-scale cannot be negative")
    return args


# ---------------------------------------------------------------------------------------------
# Timing requests


@dataclass(frozen=True)
class Timing:
    """One request: when it was sent (seconds after the probes started), how long it took, its answer."""

    sent: float
    seconds: float
    #: The HTTP status, or the name of the error when no answer came (``ReadTimeout``).
    status: int | str


def timed(client: httpx.Client, method: str, path: str, start: float, body: dict[str, Any] | None = None) -> tuple[Timing, Any]:
    """Send one request; return its timing and its JSON body (``None`` if it has none)."""
    sent = time.monotonic()
    try:
        response = client.request(method, path, json=body)
    except httpx.HTTPError as exc:
        return Timing(sent - start, time.monotonic() - sent, type(exc).__name__), None
    seconds = time.monotonic() - sent
    try:
        payload = response.json()
    except ValueError:
        payload = None
    return Timing(sent - start, seconds, response.status_code), payload


def probe(base_url: str, path: str, every: float, start: float, end: float, stop: threading.Event, into: list[Timing]) -> None:
    """GET ``path`` every ``every`` seconds from ``start`` until ``end`` or ``stop``; a slow answer delays the next GET.

    One connection, kept alive, like a load balancer's health check or a client polling its task.
    """
    with httpx.Client(base_url=base_url, timeout=REQUEST_TIMEOUT_SECONDS) as client:
        next_send = start
        while next_send < end and not stop.wait(max(0.0, next_send - time.monotonic())):
            into.append(timed(client, "GET", path, start)[0])
            next_send = max(next_send + every, time.monotonic())


def wait_until_final(client: httpx.Client, path: str, timeout: float = REQUEST_TIMEOUT_SECONDS) -> None:
    """Poll a task until it has finished, so the idle timings see a server with no work to do."""
    deadline = time.monotonic() + timeout
    while client.get(path).json()["status"] not in FINAL:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not finish within {timeout:.0f} s")
        time.sleep(0.05)


def statuses(client: httpx.Client, ids: set[str]) -> dict[str, int]:
    """How many of the tasks ``ids`` are in each status: the four usual ones always, others when present."""
    counts = Counter(task["status"] for task in fetch_all(client) if task["id"] in ids)
    return {status: counts[status] for status in SHOWN_STATUSES} | {s: n for s, n in counts.items() if s not in SHOWN_STATUSES}


# ---------------------------------------------------------------------------------------------
# The experiment


@dataclass
class LoadRun:
    """What happened while the tasks were submitted and ran."""

    submissions: list[Timing]
    probes: dict[str, list[Timing]]
    accepted: set[str]
    #: Seconds after the probes started when the tasks were counted for the last time, and the counts.
    counted_at: float
    counts: dict[str, int]


def run_load(base_url: str, target: str, args: argparse.Namespace) -> LoadRun:
    """Probe both routes from t=0, POST the slow tasks at once at ``submit_at``, stop when they are done or time is up."""
    start = time.monotonic()
    stop = threading.Event()
    probes: dict[str, list[Timing]] = {HEALTH: [], ONE_TASK: []}
    threads = [
        threading.Thread(
            target=probe,
            args=(base_url, path, args.probe_interval, start, start + args.duration, stop, probes[route]),
            daemon=True,
        )
        for route, path in ((HEALTH, "/health"), (ONE_TASK, target))
    ]
    limits = httpx.Limits(max_connections=args.tasks, max_keepalive_connections=args.tasks)
    body = {"task_type": SLOW_TASK.value, "payload": CATALOG[SLOW_TASK].example}
    pool = ThreadPoolExecutor(max_workers=args.tasks, thread_name_prefix="submit")
    try:
        with httpx.Client(base_url=base_url, timeout=REQUEST_TIMEOUT_SECONDS, limits=limits) as client:
            for thread in threads:
                thread.start()
            time.sleep(max(0.0, start + args.submit_at - time.monotonic()))
            futures = [pool.submit(timed, client, "POST", "/tasks", start, body) for _ in range(args.tasks)]
            answers = [future.result() for future in futures]
            accepted = {task["id"] for timing, task in answers if timing.status == 202}
            while True:
                counts = statuses(client, accepted)
                counted_at = time.monotonic() - start
                unfinished = sum(n for status, n in counts.items() if status not in FINAL)
                if not unfinished or counted_at >= args.duration:
                    break
                time.sleep(min(WATCH_INTERVAL_SECONDS, args.duration - counted_at))
    finally:
        # On Ctrl-C too: no new request starts; those in flight end when the stack stops the API.
        stop.set()
        pool.shutdown(wait=False, cancel_futures=True)
    for thread in threads:
        thread.join(REQUEST_TIMEOUT_SECONDS)
    return LoadRun([timing for timing, _ in answers], probes, accepted, counted_at, counts)


# ---------------------------------------------------------------------------------------------
# The report


def format_statuses(timings: list[Timing]) -> str:
    counts = Counter(timing.status for timing in timings)
    return str(dict(sorted(counts.items(), key=lambda item: str(item[0]))))


def route_line(route: str, timings: list[Timing]) -> str:
    """``  GET /health      n= 20  median      0.9 ms  max      2.7 ms  status {200: 20}``"""
    milliseconds = [timing.seconds * 1000 for timing in timings] or [0.0]
    return (
        f"  {route:<15}  n={len(timings):>3}  median {median(milliseconds):>8.1f} ms  max {max(milliseconds):>8.1f} ms"
        f"  status {format_statuses(timings)}"
    )


def window_table(probes: dict[str, list[Timing]], window: float) -> list[str]:
    """The slowest probe of each route per ``window`` seconds, by the time it was sent: when it hurt, when it stopped."""
    last = max((int(timing.sent // window) for timings in probes.values() for timing in timings), default=0)
    lines = [f"  {'window':<9}{HEALTH:>15}{ONE_TASK:>18}"]
    for index in range(last + 1):
        slowest = {}
        for route, timings in probes.items():
            inside = [timing.seconds for timing in timings if int(timing.sent // window) == index]
            slowest[route] = f"{max(inside) * 1000:.0f} ms" if inside else "-"
        name = f"{index * window:g}-{(index + 1) * window:g} s"
        lines.append(f"  {name:<9}{slowest[HEALTH]:>15}{slowest[ONE_TASK]:>18}")
    return lines


def say(line: str = "") -> None:
    print(line, flush=True)


def measure(base_url: str, args: argparse.Namespace) -> None:
    """The experiment on a running API, printing the report as it goes."""
    with httpx.Client(base_url=base_url, timeout=REQUEST_TIMEOUT_SECONDS) as client:
        target_body = {"task_type": TARGET_TASK.value, "payload": CATALOG[TARGET_TASK].example}
        target = f"/tasks/{client.post('/tasks', json=target_body).raise_for_status().json()['id']}"
        wait_until_final(client, target)
        say(f"idle ({args.idle_requests} sequential requests each):")
        for route, path in ((HEALTH, "/health"), (ONE_TASK, target)):
            say(route_line(route, [timed(client, "GET", path, 0.0)[0] for _ in range(args.idle_requests)]))

    task_seconds = CATALOG[SLOW_TASK].seed_seconds * args.time_scale
    say(
        f"{args.tasks} {SLOW_TASK.value} tasks ({task_seconds:g} s each) POSTed at once at t={args.submit_at:g} s; "
        f"a probe GETs every {args.probe_interval:g} s:"
    )
    run = run_load(base_url, target, args)
    say(route_line(SUBMIT, run.submissions))
    for route, timings in run.probes.items():
        say(route_line(route, timings))
    say(f"slowest probe per {args.window:g} s window, by the time it was sent (t=0: probes start):")
    for line in window_table(run.probes, args.window):
        say(line)
    say(f"at t={run.counted_at:.0f} s the {len(run.accepted)} accepted {SLOW_TASK.value} tasks are: {run.counts}")


def run_phase(chosen: Phase, args: argparse.Namespace) -> int:
    """Start the phase on a throwaway database, measure it, stop it; 1 if one of its processes died meanwhile."""
    workers = f"{args.workers} worker" + ("s" if args.workers > 1 else "")
    processes = f"its API, {workers} and a private Redis" if chosen.has_worker else "its API"
    say(
        f"starting phase {chosen.number} ({chosen.package}): {processes}, a fresh SQLite database, "
        f"TASK_TIME_SCALE={args.time_scale:g}"
    )
    with tempfile.TemporaryDirectory(prefix="tasklab-starvation-") as directory:
        stack = PhaseStack(
            chosen,
            workers=args.workers,
            database_url=f"sqlite:///{Path(directory) / 'starvation.db'}",
            log_dir=Path(directory),
            extra_env={"TASK_TIME_SCALE": str(args.time_scale)},
        )
        with stack:
            assert stack.api is not None  # entering the stack started it
            measure(stack.api.base_url, args)
            if dead := stack.dead_processes():
                for process in dead:
                    print(f"{process.name} exited with {process.process.returncode} during the run:", file=sys.stderr)
                    print(process.log_tail(1500), file=sys.stderr)
                return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    chosen = phase(args.phase)
    # Its own Redis, always: a REDIS_URL in the reader's shell (chapter 2 exports one, with a
    # worker listening on it) must not receive these jobs, whose rows are in another database.
    os.environ.pop("REDIS_URL", None)
    stop_on_sigterm()
    try:
        return run_phase(chosen, args)
    except KeyboardInterrupt:
        print("\ninterrupted; everything it started is stopped", file=sys.stderr, flush=True)
        return 130


if __name__ == "__main__":
    sys.exit(main())
