"""The job the phase 2 worker runs, and how the API puts it on the queue.

A job carries one thing: the task id, as JSON. Everything else (type, payload, status) is in
the database, which stays the single source of truth; Redis only says *what to do next*.
The function the worker calls is fixed here (``process_task``): a client's ``task_type`` is
looked up in the task catalog, never used to pick the function RQ imports.
"""

from __future__ import annotations

import uuid
from functools import cache

from redis import Redis
from rq import Queue, get_current_job
from rq.job import Job
from rq.serializers import JSONSerializer

from shared.settings import Settings, load_settings

from .db import engine_for_this_process
from .execution import execute_task

#: Each phase has its own queue names, so several phases can share one Redis safely.
QUEUE_NAME = "phase2:tasks"

#: The database row keeps the result; the copy RQ would keep in Redis is never read.
RESULT_TTL_SECONDS = 0
#: A job that crashed stays inspectable in RQ's FailedJobRegistry for a day.
FAILURE_TTL_SECONDS = 24 * 3600


@cache
def worker_settings() -> Settings:
    """This worker's settings, read once per process.

    The worker reads them before it forks, so every work horse inherits them instead of
    parsing the environment again for each job (a few milliseconds, on every job).
    """
    return load_settings()


def make_queue(connection: Redis) -> Queue:
    """The phase 2 queue. JSON, not RQ's default pickle: a job from Redis never runs code."""
    return Queue(QUEUE_NAME, connection=connection, serializer=JSONSerializer)


def enqueue_task(queue: Queue, task_id: uuid.UUID, settings: Settings) -> Job:
    """Put a task on the queue. The job id *is* the task id, so the two can always be matched."""
    return queue.enqueue_call(
        process_task,
        args=(str(task_id),),
        job_id=str(task_id),
        timeout=settings.job_timeout_seconds,
        result_ttl=RESULT_TTL_SECONDS,
        failure_ttl=FAILURE_TTL_SECONDS,
        description=f"task {task_id}",
    )


def process_task(task_id: str) -> str | None:
    """Run one task in the RQ work horse (a child the worker forked for this job).

    ``engine_for_this_process`` gives the child its own connection pool: a connection
    inherited across ``fork()`` would be shared with the parent. Returns the final status,
    which RQ logs.
    """
    settings = worker_settings()
    engine = engine_for_this_process(settings.database_url, busy_timeout_ms=settings.db_busy_timeout_ms)
    job = get_current_job()
    outcome = execute_task(
        engine,
        uuid.UUID(task_id),
        time_scale=settings.task_time_scale,
        worker=job.worker_name if job is not None else None,
    )
    return outcome.value if outcome is not None else None
