"""The job the phase 3 worker runs: one attempt of a task, with retries, timeouts and a lease.

As in phase 2, a job carries only the task id, as JSON, and the database stays the single
source of truth. What is new is everything around the attempt: RQ's ``Retry`` with backoff
waits, a time limit per task type, a lease that reveals a dead attempt in seconds, and the
decision "retry or dead letter" when an attempt fails. That machinery is
:func:`recovery.attempts.run_attempt`: phases 4 to 6 run it unchanged, so it lives in
``recovery/`` and this module only names the queue and the job.
"""

from __future__ import annotations

import uuid
from functools import cache

from redis import Redis
from rq import Queue, get_current_job
from rq.job import Job
from rq.serializers import JSONSerializer

from shared.models import Task

from .db import engine_for_this_process
from .recovery.attempts import enqueue_attempt, run_attempt
from .recovery.settings import RecoverySettings, load_settings

#: Each phase has its own queue names, so several phases can share one Redis safely.
QUEUE_NAME = "phase3:tasks"


@cache
def worker_settings() -> RecoverySettings:
    """This worker's settings, read once per process.

    The worker reads them before it forks, so every work horse inherits them instead of
    parsing the environment again for each job (a few milliseconds, on every job).
    """
    return load_settings()


def make_queue(connection: Redis) -> Queue:
    """The phase 3 queue. JSON, not RQ's default pickle: a job from Redis never runs code."""
    return Queue(QUEUE_NAME, connection=connection, serializer=JSONSerializer)


def enqueue_task(queue: Queue, task: Task, settings: RecoverySettings) -> Job:
    """Put a task on the queue with its type's time limit and retry budget (the job id is the task id)."""
    return enqueue_attempt(queue, process_task, task, settings)


def process_task(task_id: str) -> str | None:
    """Run one attempt of a task in the RQ work horse (a child the worker forked for this job).

    ``engine_for_this_process`` gives the child its own connection pool: a connection
    inherited across ``fork()`` would be shared with the parent. Returns the status the attempt
    led to, which RQ logs.
    """
    settings = worker_settings()
    engine = engine_for_this_process(settings.database_url, busy_timeout_ms=settings.db_busy_timeout_ms)
    job = get_current_job()
    if job is None:
        raise RuntimeError("process_task runs inside an RQ worker")
    outcome = run_attempt(engine, job, uuid.UUID(task_id), settings)
    return outcome.value if outcome is not None else None
