"""Part (a): ``POST /tasks`` of each phase against the framework's floor, in the same server.

For each phase, one real uvicorn process serves :mod:`bench.floor_app` (the phase's own app
plus the bench routes) on a fresh SQLite database. The load goes, in alternating rounds, to:

* ``/bench/floor``     the framework's floor (see :mod:`bench.floor_app`),
* ``/bench/validate``  parsing and validation as ``POST /tasks`` does them, no database,
* ``/tasks``           the phase's real route: phase 1 stores the task and runs it in the API
  process after answering; phase 2 stores it and enqueues an RQ job, with **no worker**
  running, so the queue just grows (the "POST answers fast whatever the backlog" claim).

Phase 1 runs each accepted task in the server after the answer; before the next round starts
the benchmark waits until the server has finished them, so the floor of the next round is
not measured beside leftover work. The server's CPU time (read from the OS) is charged to the
endpoint that caused it, background work included.
"""

from __future__ import annotations

import importlib
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import redis
from rich.progress import Progress, TaskID
from rq import Queue
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bench.config import NOOP_TASK, PHASE_ENV, BenchConfig
from bench.floor_app import FLOOR_PATH, VALIDATE_PATH
from bench.load import LoadSample, run_load
from phase5_scaling.db import create_db_engine
from shared.models import Task, TaskStatus
from tasklab_cli.processes import PHASES, Phase, start_api

SETTLE_POLL_SECONDS = 0.05
#: A log line worth showing: an exception's "Name: message" or a logged ERROR/WARNING.
ERROR_LINE = re.compile(r"^([A-Za-z_][\w.]*(Error|Exception|Timeout)\b.*|(ERROR|WARNING|CRITICAL):.*)$")


@dataclass(frozen=True)
class Endpoint:
    """A route the load is sent to, and what it does, in words for the report."""

    key: str
    path: str
    does: str


FLOOR = Endpoint("floor", FLOOR_PATH, "framework floor: async no-op, body not read")
VALIDATE = Endpoint("validate", VALIDATE_PATH, "parse + validate TaskCreate, no DB")
SUBMIT_DOES = {
    1: "insert + run it in-process after the 202",
    2: "insert + enqueue (no worker running)",
}


def submit_endpoint(phase_number: int) -> Endpoint:
    return Endpoint("tasks", "/tasks", SUBMIT_DOES.get(phase_number, "the phase's POST /tasks"))


@dataclass(frozen=True)
class ServedWithBenchRoutes(Phase):
    """A phase whose API process serves :mod:`bench.floor_app` instead of ``phaseN_x.api:app``.

    ``ApiProcess`` starts uvicorn on ``phase.api_target``; overriding only that keeps every
    other part of starting, health-checking and stopping the server in ``tasklab_cli``.
    """

    @property
    def api_target(self) -> str:
        return f"bench.floor_app:{self.package}"

    @classmethod
    def of(cls, phase: Phase) -> ServedWithBenchRoutes:
        return cls(phase.number, phase.package, phase.has_worker)


@dataclass
class EndpointResult:
    """The pooled rounds of one endpoint of one phase, the server CPU they cost, and the
    single-client pass (service time without queueing)."""

    phase: int
    endpoint: Endpoint
    sample: LoadSample = field(default_factory=LoadSample)
    server_cpu_seconds: float = 0.0
    single_client: LoadSample = field(default_factory=LoadSample)

    @property
    def server_cpu_ms_per_request(self) -> float:
        return 1000 * self.server_cpu_seconds / self.sample.ok if self.sample.ok else float("nan")


@dataclass
class PhaseSubmitResult:
    """Part (a) for one phase: one result per endpoint, and what the store holds afterwards."""

    phase: int
    endpoints: list[EndpointResult]
    accepted: int = 0
    stored: int = 0
    #: Phase 1: tasks the API finished running. Phase 2: jobs waiting in the queue.
    completed: int | None = None
    queued: int | None = None
    #: Set when the phase misbehaved under the load (figures up to then are kept).
    problem: str | None = None

    def result(self, key: str) -> EndpointResult:
        return next(r for r in self.endpoints if r.endpoint.key == key)


def server_cpu_seconds(process: psutil.Process) -> float:
    """User + system CPU time of the server process so far (all its threads)."""
    times = process.cpu_times()
    return times.user + times.system


def queued_jobs(phase: Phase, client: redis.Redis) -> int:
    """The jobs waiting in the phase's own queues: one queue up to phase 4, one per priority from 5."""
    jobs = importlib.import_module(f"{phase.package}.jobs")
    names = getattr(jobs, "QUEUE_NAMES", None) or [jobs.QUEUE_NAME]
    return sum(Queue(str(name), connection=client).count for name in names)


def count_tasks(engine: Engine, *statuses: TaskStatus) -> int:
    with Session(engine) as session:
        query = select(func.count()).select_from(Task)
        if statuses:
            query = query.where(col(Task.status).in_([s.value for s in statuses]))
        return int(session.exec(query).one())


def wait_until_settled(engine: Engine, timeout_seconds: float) -> int:
    """Wait until no task is pending or running (phase 1 finished its backlog); return how many
    still are when ``timeout_seconds`` ran out (0: settled)."""
    deadline = time.monotonic() + timeout_seconds
    while unfinished := count_tasks(engine, TaskStatus.PENDING, TaskStatus.RUNNING):
        if time.monotonic() > deadline:
            return unfinished
        time.sleep(SETTLE_POLL_SECONDS)
    return 0


def summarize_log(text: str, limit: int = 6) -> str:
    """The distinct error lines of a server log, most frequent first: a traceback's last line
    says what went wrong, and a stuck server repeats the same one many times."""
    counts: dict[str, int] = {}
    for line in text.splitlines():
        if ERROR_LINE.match(line):
            counts[line] = counts.get(line, 0) + 1
    ranked = sorted(counts.items(), key=lambda item: -item[1])[:limit]
    return "\n".join(f"  {count} × {line[:300]}" for line, count in ranked) or "  (no error logged)"


class PhaseStuck(Exception):
    """The phase stopped finishing what it accepted: the remaining rounds would measure a hang."""


def measure_phase(
    phase_number: int,
    config: BenchConfig,
    workdir: Path,
    redis_url: str | None,
    progress: Progress,
) -> PhaseSubmitResult:
    """Start the phase's server with the bench routes, load each endpoint, stop the server."""
    phase = PHASES[phase_number]
    runs_tasks_in_api = not phase.has_worker
    database_url = f"sqlite:///{workdir / f'submit-phase{phase_number}.db'}"
    env = {**PHASE_ENV, "DATABASE_URL": database_url}
    if phase.has_worker:
        if redis_url is None:
            raise ValueError(f"phase {phase_number} needs Redis")
        env["REDIS_URL"] = redis_url
        with redis.Redis.from_url(redis_url) as client:
            client.flushdb()  # the benchmark's private server: nothing of anyone else's

    endpoints = [FLOOR, VALIDATE, submit_endpoint(phase_number)]
    results = [EndpointResult(phase_number, endpoint) for endpoint in endpoints]
    outcome = PhaseSubmitResult(phase_number, results)
    engine = create_db_engine(database_url)
    api = start_api(ServedWithBenchRoutes.of(phase), env, log_dir=workdir)
    bars: list[TaskID] = []

    def load(
        endpoint: Endpoint, requests: int, time_cap: float, bar: TaskID, concurrency: int = config.concurrency
    ) -> LoadSample:
        sample = run_load(
            api.base_url,
            endpoint.path,
            NOOP_TASK,
            concurrency=concurrency,
            requests=requests,
            time_cap_seconds=time_cap,
            on_answer=lambda: progress.advance(bar),
        )
        if endpoint.key == "tasks":
            outcome.accepted += sample.ok
            if runs_tasks_in_api and (unfinished := wait_until_settled(engine, config.settle_timeout_seconds)):
                raise PhaseStuck(
                    f"{unfinished} accepted task(s) still pending or running {config.settle_timeout_seconds:.0f} s after "
                    f"the load stopped (at concurrency {concurrency}); server log:\n{summarize_log(api.log_tail(20000))}"
                )
        return sample

    try:
        server = psutil.Process(api.pid)
        bars.append(warm := progress.add_task(f"phase {phase_number} · warm-up", total=config.warmup * len(endpoints)))
        for endpoint in endpoints:
            load(endpoint, config.warmup, config.time_cap_per_round, warm)

        for result in results:
            bars.append(
                progress.add_task(
                    f"phase {phase_number} · POST {result.endpoint.path}", total=config.requests_per_round * config.rounds
                )
            )
        for _ in range(config.rounds):
            for result, bar in zip(results, bars[1:], strict=True):
                cpu_before = server_cpu_seconds(server)
                sample = load(result.endpoint, config.requests_per_round, config.time_cap_per_round, bar)
                result.server_cpu_seconds += server_cpu_seconds(server) - cpu_before
                result.sample.merge(sample)

        bars.append(
            solo := progress.add_task(
                f"phase {phase_number} · one client at a time", total=config.single_client_requests * len(results)
            )
        )
        for result in results:
            result.single_client = load(
                result.endpoint, config.single_client_requests, config.time_cap_per_round, solo, concurrency=1
            )
    except PhaseStuck as stuck:
        outcome.problem = str(stuck)
    except Exception as exc:
        raise RuntimeError(
            f"phase {phase_number} submit benchmark failed: {exc}\nserver log:\n{summarize_log(api.log_tail(20000))}"
        ) from exc
    finally:
        for bar in bars:
            progress.remove_task(bar)
        api.stop()

    outcome.stored = count_tasks(engine)
    if runs_tasks_in_api:
        outcome.completed = count_tasks(engine, TaskStatus.COMPLETED)
    elif redis_url is not None:
        with redis.Redis.from_url(redis_url) as client:
            outcome.queued = queued_jobs(phase, client)
    engine.dispose()
    return outcome
