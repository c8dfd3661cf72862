"""The job the phase 4 worker runs: phase 3's attempt, observed.

The attempt itself is unchanged (:func:`recovery.attempts.run_attempt`: claim, lease,
handler, retry or dead letter). What phase 4 adds is the listener it runs with,
:class:`~monitoring.events.MonitoringEvents`: each transition the attempt makes is
counted in the metrics files the worker exports, and logged with the task's context.
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
from .monitoring.events import MonitoringEvents
from .monitoring.metrics import TaskMetrics
from .monitoring.settings import MonitoringSettings, load_settings
from .recovery.attempts import enqueue_attempt, run_attempt

#: Each phase has its own queue names, so several phases can share one Redis safely.
QUEUE_NAME = "phase4:tasks"


@cache
def worker_settings() -> MonitoringSettings:
    """This worker's settings, read once per process (before the fork, so horses inherit them)."""
    return load_settings()


@cache
def worker_events() -> MonitoringEvents:
    """The worker's metrics and their listener, built once, after the worker chose its metrics files.

    The worker builds them before it forks, so every work horse inherits the same objects; a
    horse's first increment then moves them to the horse's own file (see
    :func:`monitoring.metrics.worker_identity`).
    """
    return MonitoringEvents(TaskMetrics())


def make_queue(connection: Redis) -> Queue:
    """The phase 4 queue. JSON, not RQ's default pickle: a job from Redis never runs code."""
    return Queue(QUEUE_NAME, connection=connection, serializer=JSONSerializer)


def enqueue_task(queue: Queue, task: Task, settings: MonitoringSettings) -> Job:
    """Put a task on the queue with its type's time limit and retry budget (the job id is the task id)."""
    return enqueue_attempt(queue, process_task, task, settings)


def process_task(task_id: str) -> str | None:
    """Run one attempt of a task in the RQ work horse, counted and logged."""
    settings = worker_settings()
    engine = engine_for_this_process(settings.database_url, busy_timeout_ms=settings.db_busy_timeout_ms)
    job = get_current_job()
    if job is None:
        raise RuntimeError("process_task runs inside an RQ worker")
    outcome = run_attempt(engine, job, uuid.UUID(task_id), settings, worker_events())
    return outcome.value if outcome is not None else None
