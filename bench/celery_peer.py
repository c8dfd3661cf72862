"""Celery, the peer phase 5 is measured against: the same no-op attempt, the same writes, the same run.

Phase 5's target: its pool must to drain at least as fast as Celery's prefork pool with 2 processes,
"running the same handler with the same database writes", measured side by side. A ratio only
means something if the two sides differ in the queue machinery alone, so every other choice here
copies what the tasklab drain does (:mod:`bench.drain`):

* **Same attempt.** The task calls :func:`phase5_scaling.execution.execute_task`, the attempt phases 1
  and 2 run: claim the row (``pending → running``: status, ``started_at``, ``attempts + 1``,
  ``worker``) and get its type and payload with it, run the catalog's ``noop`` handler through
  :func:`shared.tasks.run_task`, then ``running → completed`` (status, result, ``completed_at``).
  Two UPDATE statements, each its own commit, each a compare-and-set on the status
  (:mod:`phase5_scaling.transitions`). Phase 5's attempt claims and completes through the very same
  functions (:func:`phase5_scaling.execution.claim_task`, :func:`phase5_scaling.transitions.mark_completed`),
  so whatever makes those writes cheaper serves both sides alike; phase 5's lease, metrics and
  log lines are tasklab's own cost, not added here.
* **Same database.** A fresh SQLite file in WAL mode with a busy timeout, through the engine
  factory every tasklab process uses (:func:`phase5_scaling.db.engine_for_this_process`, which also
  keeps a forked pool child off its parent's connections).
* **Same queue, already full.** The rows are created as the API creates them (a ``TaskCreate``
  validated into a ``Task``) and one message per task, carrying only the task id as JSON, is
  sent to the benchmark's private Redis before the worker starts. The start-up, the wall and
  the steady times then come from the rows' ``started_at`` and ``completed_at``, read by the
  same code (:func:`bench.drain.time_drain`), which also samples the processes' memory.
* **Celery as shipped.** ``celery worker -P prefork --concurrency N``, with N each worker count
  the phases drain with: 2 is the size the issue names; 1 shows how far Celery itself scales
  from one process to two on the same machine in the same run, beside phase 5's scaling
  target. Celery's defaults for everything else (acknowledgement before the task runs,
  a prefetch of 4 messages per process, warning-level logs, JSON). No result backend: the row
  holds the result, as tasklab's RQ jobs keep none (``result_ttl=0``).

Celery lives in the ``bench`` extra (``pip install -e '.[bench]'``), used by ``bench/`` only.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import redis
from celery import Celery  # type: ignore[import-untyped]
from rich.progress import Progress
from sqlalchemy.engine import Engine
from sqlmodel import Session

from bench.config import NOOP_TASK, PHASE_ENV, BenchConfig
from bench.drain import DrainResult, time_drain
from bench.memory import classify_celery
from phase5_scaling.db import create_db_engine, engine_for_this_process, init_db
from phase5_scaling.execution import execute_task
from shared.models import Task, TaskCreate
from tasklab_cli.processes import ManagedProcess

#: The name the messages carry and the worker looks the task up by.
TASK_NAME = "bench.celery_peer.run_attempt"
#: How the report names this drain.
PEER_LABEL = "Celery"


def make_app(broker_url: str | None) -> Celery:
    """A Celery app on ``broker_url`` with the one task, and nothing changed but what has to be.

    ``task_ignore_result``: there is no result backend to store into. ``broker_connection_retry_on_startup``
    is Celery's own behaviour, set only to silence the warning Celery 5.3+ prints without it.
    """
    app = Celery("tasklab-bench-peer", broker=broker_url, set_as_current=False)
    app.conf.update(task_ignore_result=True, broker_connection_retry_on_startup=True)
    app.task(name=TASK_NAME)(run_attempt)
    return app


def run_attempt(task_id: str) -> str | None:
    """The Celery task: one tasklab attempt on the row ``task_id``, exactly as phases 1 and 2 run it.

    The engine is made on the first call in each pool child (Celery forks the children from its
    main process, which never opens the database), then kept: statements compile once per process,
    as they do in a phase 5 pool process. Returns the status the task ended in, which Celery drops.
    """
    engine = engine_for_this_process(os.environ["DATABASE_URL"])
    time_scale = float(os.environ.get("TASK_TIME_SCALE", "1"))
    outcome = execute_task(engine, uuid.UUID(task_id), time_scale=time_scale, worker=f"celery-{os.getpid()}")
    return outcome.value if outcome is not None else None


#: What ``celery -A bench.celery_peer worker`` loads, configured by the environment the benchmark gives it.
app = make_app(os.environ.get("REDIS_URL"))


def insert_noop_tasks(engine: Engine, count: int) -> list[uuid.UUID]:
    """Store ``count`` pending no-op tasks the way ``POST /tasks`` builds them, in one transaction.

    Built through ``TaskCreate`` and ``Task`` as the API does, so the rows are alike column for
    column; one commit, not one per row, since this part is not timed.
    """
    request = TaskCreate.model_validate(NOOP_TASK)
    tasks = [Task.model_validate(request) for _ in range(count)]
    with Session(engine, expire_on_commit=False) as session:
        session.add_all(tasks)
        session.commit()
    return [task.id for task in tasks]


def send_messages(celery_app: Celery, task_ids: Sequence[uuid.UUID]) -> None:
    """One message per task, carrying only its id, over one producer connection."""
    with celery_app.producer_or_acquire() as producer:
        for task_id in task_ids:
            celery_app.send_task(TASK_NAME, args=[str(task_id)], producer=producer)


def queued_messages(celery_app: Celery, redis_url: str) -> int:
    """Messages waiting in Celery's default queue (a Redis list of that name)."""
    with redis.Redis.from_url(redis_url) as client:
        return int(client.llen(celery_app.conf.task_default_queue))


def worker_command(processes: int) -> list[str]:
    """``celery worker`` with the issue's pool and ``processes`` children; every other setting is Celery's default."""
    return [sys.executable, "-m", "celery", "-A", "bench.celery_peer", "worker", "-P", "prefork", "--concurrency", str(processes)]


def fill_queue(engine: Engine, redis_url: str, count: int) -> None:
    """The rows and their messages, before any worker runs; fail unless every message is queued."""
    task_ids = insert_noop_tasks(engine, count)
    with make_app(redis_url) as sender:
        send_messages(sender, task_ids)
        queued = queued_messages(sender, redis_url)
    if queued != count:
        raise RuntimeError(f"{queued} Celery messages in the queue, expected {count}")


def measure_celery_drain(config: BenchConfig, workdir: Path, redis_url: str, progress: Progress, processes: int) -> DrainResult:
    """Queue ``drain_tasks`` no-op tasks for Celery, then time its prefork pool of ``processes`` completing them."""
    label = f"drain · {PEER_LABEL} prefork · {processes} processes"
    database_url = f"sqlite:///{workdir / f'drain-celery-{processes}p.db'}"
    env = {**PHASE_ENV, "DATABASE_URL": database_url, "REDIS_URL": redis_url}
    with redis.Redis.from_url(redis_url) as client:
        client.flushdb()  # the benchmark's private server: nothing of anyone else's

    engine = create_db_engine(database_url)
    result = DrainResult(phase=None, peer=PEER_LABEL, workers=processes, tasks=config.drain_tasks)
    worker: ManagedProcess | None = None
    try:
        init_db(engine)
        fill_queue(engine, redis_url, config.drain_tasks)
        launched_at = datetime.now(UTC)
        # Celery has no burst mode: the worker waits for more once the queue is empty, until stopped.
        worker = ManagedProcess("celery-worker", worker_command(processes), env, log_dir=workdir)
        time_drain(result, engine, [worker], launched_at, classify_celery, config, progress, label)
    finally:
        if worker is not None:
            worker.stop()
        engine.dispose()
    return result
