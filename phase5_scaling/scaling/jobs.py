"""Phase 5's queues and job: one RQ queue per priority level, and phase 4's observed attempt.

Priority ``p`` (1 lowest … 5 highest) goes to the queue ``phase5:p<p>``. A worker listens to the
five queues highest first, and RQ takes from the first non-empty one: the order of one Redis
``BRPOP`` over the five lists, 5 first, FIFO within a level. Strict order alone starves the low levels under a steady
stream of urgent work; :mod:`scaling.priorities` bounds every level's wait.

The attempt is phase 4's, unchanged (:func:`recovery.attempts.run_attempt` with the
monitoring listener). What differs is where it runs: in the pool process itself, not in a
forked work horse (:mod:`scaling.pool`).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from functools import cache

from redis import Redis
from rq import Queue, get_current_job
from rq.job import Job
from rq.serializers import JSONSerializer

from shared.models import PRIORITY_HIGHEST, PRIORITY_LOWEST, Task, TaskRead

from ..db import engine_for_this_process
from ..monitoring.events import MonitoringEvents
from ..monitoring.metrics import TaskMetrics
from ..recovery.attempts import enqueue_attempt, run_attempt
from ..recovery.leases import LeaseKeeper
from .settings import ScalingSettings, load_settings

#: The levels, highest first: the order every worker listens in.
PRIORITIES: tuple[int, ...] = tuple(range(PRIORITY_HIGHEST, PRIORITY_LOWEST - 1, -1))


def queue_name(priority: int) -> str:
    """``phase5:p5`` … ``phase5:p1``: each phase has its own names, so phases can share a Redis."""
    return f"phase5:p{priority}"


#: Every queue name, highest priority first.
QUEUE_NAMES: tuple[str, ...] = tuple(queue_name(priority) for priority in PRIORITIES)


@cache
def worker_settings() -> ScalingSettings:
    """This process's settings, read once."""
    return load_settings()


@cache
def lease_keeper(connection: Redis) -> LeaseKeeper:
    """This pool process's leases, renewed by one thread for the life of the process.

    A lease that ends is deleted in the transaction that finishes its job
    (:class:`~scaling.bookkeeping.OneTripBookkeeping`), not in a round trip of its own.
    """
    return LeaseKeeper(connection, ttl_seconds=worker_settings().task_lease_seconds, release_later=True)


@cache
def worker_events() -> MonitoringEvents:
    """This process's metrics and their listener, built once, after it chose its metrics files."""
    return MonitoringEvents(TaskMetrics())


def make_queues(connection: Redis) -> list[Queue]:
    """The five queues, highest priority first. JSON, not pickle: a job from Redis never runs code."""
    return [Queue(name, connection=connection, serializer=JSONSerializer) for name in QUEUE_NAMES]


def make_queue(connection: Redis) -> Queue:
    """The top queue: what a single-queue caller (the shared lifespan) is handed."""
    return make_queues(connection)[0]


def queue_for(queues: Sequence[Queue], priority: int) -> Queue:
    """The queue of a priority level, from the list :func:`make_queues` returns."""
    return queues[PRIORITIES.index(priority)]


def enqueue_task(queues: Sequence[Queue], task: Task, settings: ScalingSettings) -> Job:
    """Put a task on its priority's queue with its type's time limit and retry budget."""
    return enqueue_attempt(queue_for(queues, task.priority), process_task, task, settings)


def enqueue_tasks(queues: Sequence[Queue], tasks: Sequence[Task | TaskRead], settings: ScalingSettings) -> None:
    """Put many tasks on their priorities' queues in one ``MULTI … EXEC``: one round trip for all."""
    with queues[0].connection.pipeline() as pipeline:
        for task in tasks:
            enqueue_attempt(queue_for(queues, task.priority), process_task, task, settings, pipeline)
        pipeline.execute()


def process_task(task_id: str) -> str | None:
    """Run one attempt of a task, in the pool process that took the job, counted and logged."""
    settings = worker_settings()
    engine = engine_for_this_process(settings.database_url, busy_timeout_ms=settings.db_busy_timeout_ms)
    job = get_current_job()
    if job is None:
        raise RuntimeError("process_task runs inside an RQ worker")
    outcome = run_attempt(engine, job, uuid.UUID(task_id), settings, worker_events(), lease_keeper(job.connection))
    return outcome.value if outcome is not None else None
