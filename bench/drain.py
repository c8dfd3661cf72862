"""Part (b): how fast a phase's workers empty a queue of N no-op tasks, with 1 and with 2 processes.

One measurement, for a given phase and number of workers:

1. a fresh SQLite database and a flushed private Redis;
2. the phase's real API enqueues N ``noop`` tasks over HTTP, with no worker running; then it
   is stopped, so it takes no CPU from the workers;
3. ``python -m phaseN_x.worker --burst`` is launched that many times at once; the
   benchmark polls the database until every row is ``completed`` (or ``failed``); the burst
   workers exit once the queue is empty.

The times come from the rows themselves (``started_at``, ``completed_at``, written by the
workers), measured from the moment the workers were launched:

* *wall*: launch → last task completed. What a user waits for, worker start-up included.
* *steady*: first task started → last task completed. The rate once the workers are up: what
  a longer queue converges to, since start-up is paid once.

A no-op task costs RQ a ``fork()`` of the work horse, the job bookkeeping in Redis and three
writes to the task row; that is what these figures measure. Phase 3 adds a lease and RQ's
retry bookkeeping; phase 4 adds its metrics files and log lines, so 4 ÷ 3 is monitoring's price.

While the workers drain, :mod:`bench.memory` samples the resident memory of every process they
are made of (memory is priced beside speed). :mod:`bench.celery_peer` drains the same way
with Celery, through :func:`time_drain`, so both are timed and sampled by the same code.
"""

from __future__ import annotations

import importlib
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import redis
from rich.progress import Progress
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bench.config import NOOP_TASK, PHASE_ENV, BenchConfig
from bench.load import run_load
from bench.memory import Classifier, MemoryResult, MemorySampler, classify_pool, classify_rq_worker
from phase5_scaling.db import create_db_engine
from shared.models import Task, TaskStatus
from tasklab_cli.processes import PHASES, ManagedProcess, start_api, start_worker


@dataclass
class DrainResult:
    """One drain: which system, how many tasks, how many workers, the three times that describe it, its memory.

    ``phase`` is the tasklab phase that drained; a peer measured beside them (Celery) has no
    phase but a ``peer`` name instead.
    """

    phase: int | None
    workers: int
    tasks: int
    peer: str | None = None
    completed: int = 0
    failed: int = 0
    wall_seconds: float = float("nan")
    startup_seconds: float = float("nan")
    steady_seconds: float = float("nan")
    timed_out: bool = False
    memory: MemoryResult | None = None

    @property
    def label(self) -> str:
        """``phase 5`` or the peer's name: what the report prints in its first column."""
        return self.peer if self.peer is not None else f"phase {self.phase}"

    @property
    def all_completed(self) -> bool:
        return self.completed == self.tasks and not self.timed_out

    @property
    def tasks_per_second(self) -> float:
        return self.completed / self.wall_seconds if self.wall_seconds > 0 else float("nan")

    @property
    def steady_tasks_per_second(self) -> float:
        return self.completed / self.steady_seconds if self.steady_seconds > 0 else float("nan")


def count_by_status(engine: Engine) -> dict[str, int]:
    with Session(engine) as session:
        rows = session.exec(select(Task.status, func.count()).group_by(Task.status)).all()
    return {str(status): int(count) for status, count in rows}


def completion_span(engine: Engine) -> tuple[datetime, datetime] | None:
    """First ``started_at`` and last ``completed_at`` of the completed tasks, as the workers wrote them."""
    with Session(engine) as session:
        first, last = session.exec(
            select(func.min(Task.started_at), func.max(Task.completed_at)).where(col(Task.status) == TaskStatus.COMPLETED.value)
        ).one()
    if first is None or last is None:
        return None
    # SQLite hands back naive values through an aggregate (no column type to convert them).
    as_utc = [value if isinstance(value, datetime) else datetime.fromisoformat(str(value)) for value in (first, last)]
    first_utc, last_utc = (value.replace(tzinfo=UTC) if value.tzinfo is None else value for value in as_utc)
    return first_utc, last_utc


def enqueue_tasks(base_url: str, config: BenchConfig, progress: Progress, label: str) -> None:
    """Submit ``drain_tasks`` no-op tasks through the real API; fail unless each one was accepted."""
    bar = progress.add_task(f"{label} · enqueue", total=config.drain_tasks)
    sample = run_load(
        base_url,
        "/tasks",
        NOOP_TASK,
        concurrency=config.concurrency,
        requests=config.drain_tasks,
        time_cap_seconds=config.drain_timeout_seconds,
        on_answer=lambda: progress.advance(bar),
    )
    progress.remove_task(bar)
    if sample.ok != config.drain_tasks:
        raise RuntimeError(f"only {sample.ok} of {config.drain_tasks} tasks were accepted; first error: {sample.first_error}")


def wait_for_drain(
    engine: Engine, workers: list[ManagedProcess], result: DrainResult, config: BenchConfig, progress: Progress, label: str
) -> None:
    """Poll the database until every task is final, every worker has exited, or time is up."""
    bar = progress.add_task(f"{label} · drain", total=result.tasks)
    deadline = time.monotonic() + config.drain_timeout_seconds
    while True:
        counts = count_by_status(engine)
        result.completed = counts.get(TaskStatus.COMPLETED.value, 0)
        result.failed = counts.get(TaskStatus.FAILED.value, 0)
        progress.update(bar, completed=result.completed)
        if result.completed + result.failed >= result.tasks:
            break
        if not any(worker.alive() for worker in workers):
            # Burst workers exit on an empty queue; a last count catches rows written meanwhile.
            counts = count_by_status(engine)
            result.completed = counts.get(TaskStatus.COMPLETED.value, 0)
            result.failed = counts.get(TaskStatus.FAILED.value, 0)
            break
        if time.monotonic() > deadline:
            result.timed_out = True
            break
        time.sleep(config.drain_poll_seconds)
    progress.remove_task(bar)


def queued_jobs(phase_number: int, redis_url: str) -> int:
    """Jobs waiting in the phase's own queue (each phase names its queue in its ``jobs.py``)."""
    jobs = importlib.import_module(f"{PHASES[phase_number].package}.jobs")
    with redis.Redis.from_url(redis_url) as client:
        # Phase 5 on has a queue per priority level; earlier phases have one.
        queues = jobs.make_queues(client) if hasattr(jobs, "make_queues") else [jobs.make_queue(client)]
        return sum(int(queue.count) for queue in queues)


def record_times(result: DrainResult, engine: Engine, launched_at: datetime) -> None:
    """Wall, start-up and steady times from the rows' own timestamps, counted from the launch."""
    span = completion_span(engine)
    if span is None:
        return
    first_started, last_completed = span
    result.wall_seconds = (last_completed - launched_at).total_seconds()
    result.startup_seconds = (first_started - launched_at).total_seconds()
    result.steady_seconds = (last_completed - first_started).total_seconds()


def time_drain(
    result: DrainResult,
    engine: Engine,
    processes: list[ManagedProcess],
    launched_at: datetime,
    classify: Classifier,
    config: BenchConfig,
    progress: Progress,
    label: str,
) -> None:
    """Wait for ``processes`` (launched at ``launched_at``) to drain, sampling their memory; fill in ``result``.

    Raises with the processes' log tails unless every task completed: a figure from a drain
    that lost tasks would flatter it.
    """
    with MemorySampler([process.pid for process in processes], classify) as sampler:
        wait_for_drain(engine, processes, result, config, progress, label)
    result.memory = sampler.result()
    record_times(result, engine, launched_at)
    if not result.all_completed:
        logs = "\n".join(f"--- {p.name} ---\n{p.log_tail(1500)}" for p in processes)
        counts = f"{result.completed} of {result.tasks} completed, {result.failed} failed, timed out: {result.timed_out}"
        raise RuntimeError(f"{label}: {counts}\n{logs}")


def measure_drain(
    phase_number: int, workers: int, config: BenchConfig, workdir: Path, redis_url: str, progress: Progress
) -> DrainResult:
    """Enqueue ``drain_tasks`` no-op tasks, then time ``workers`` burst workers of the phase completing them."""
    phase = PHASES[phase_number]
    label = f"drain · phase {phase_number} · {workers} worker{'s' if workers > 1 else ''}"
    database_url = f"sqlite:///{workdir / f'drain-p{phase_number}-{workers}w.db'}"
    # A metrics root of its own (phase 4 on): no drain adopts another drain's files.
    metrics_dir = workdir / f"metrics-p{phase_number}-{workers}w"
    env = {**PHASE_ENV, "DATABASE_URL": database_url, "REDIS_URL": redis_url, "METRICS_DIR": str(metrics_dir)}
    with redis.Redis.from_url(redis_url) as client:
        client.flushdb()  # the benchmark's private server: nothing of anyone else's

    api = start_api(phase, env, log_dir=workdir)
    try:
        enqueue_tasks(api.base_url, config, progress, label)
    except Exception as exc:
        raise RuntimeError(f"{label}: {exc}\n--- API log ---\n{api.log_tail()}") from exc
    finally:
        api.stop()
    queued = queued_jobs(phase_number, redis_url)
    if queued != config.drain_tasks:
        raise RuntimeError(f"{label}: {queued} jobs in the queue, expected {config.drain_tasks}")

    result = DrainResult(phase=phase_number, workers=workers, tasks=config.drain_tasks)
    engine = create_db_engine(database_url)
    launched_at = datetime.now(UTC)
    processes: list[ManagedProcess] = []
    try:
        if phase.has_pool:  # phase 5 on: one supervisor runs all the worker processes
            processes.append(start_worker(phase, env, "--burst", "--processes", str(workers), log_dir=workdir))
        else:
            for index in range(1, workers + 1):
                processes.append(start_worker(phase, env, "--burst", index=index, log_dir=workdir))
        classify = classify_pool if phase.has_pool else classify_rq_worker
        time_drain(result, engine, processes, launched_at, classify, config, progress, label)
    finally:
        for process in processes:
            process.stop()
        engine.dispose()
    return result
