"""One attempt of a task, and what happens when it fails: the heart of phase 3.

A job carries only the task id, as JSON, and the database stays the single source of truth.
What phase 3 added is the answer to "this attempt failed, now what?"::

    attempt fails ─▶ permanent error, or attempts used up? ─▶ yes: failed (a dead letter)
                                                         └─▶ no:  retrying, and RQ runs the job
                                                                  again after a backoff wait

RQ's own retry machinery does the waiting: the job is enqueued with ``Retry(max, intervals)``,
and raising from the job makes RQ's scheduler put it back on the queue when its interval is
up. The decision, and every status write, stays here, as compare-and-set transitions; no RQ
callback writes state (``on_failure`` also fires for abandoned jobs that RQ will retry).

Execution is *at least once*: an attempt can run to its end and still be run again (its
worker died before recording the result, a lease lapsed during a Redis outage). Handlers must
be idempotent; docs/03-retry.md explains why no queue can promise exactly once.

Each phase keeps its own queue and job function (``phaseN_x/jobs.py``) and calls into here;
from phase 4 on it also passes the :class:`~recovery.events.TaskEvents` it listens with.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager

from redis.client import Pipeline
from rq import Queue, Retry
from rq.job import Job
from rq.timeouts import JobTimeoutException
from sqlalchemy.engine import Engine
from sqlmodel import Session

from shared.models import Task, TaskRead, TaskStatus
from shared.tasks import PermanentTaskError, TaskContext, run_task

from .. import transitions
from ..execution import claim_task, describe_error, record
from .backoff import backoff_intervals
from .events import NO_EVENTS, TaskEvents
from .leases import LeaseKeeper, TaskLease, attempt_holder
from .settings import RecoverySettings, RetryPolicy

#: The database row keeps the result; the copy RQ would keep in Redis is never read.
RESULT_TTL_SECONDS = 0
#: A job that crashed stays inspectable in RQ's FailedJobRegistry for a day.
FAILURE_TTL_SECONDS = 24 * 3600

log = logging.getLogger(__name__)


def retry_for(policy: RetryPolicy, attempts_made: int = 0) -> Retry | None:
    """RQ's ``Retry`` for the attempts a task has left, or ``None`` when the next one is its last.

    ``attempts_made`` lets the reconciler re-enqueue a task half-way through its budget: it gets
    the retries and the waits that were still ahead of it, not a fresh set.
    """
    retries_left = policy.max_attempts - attempts_made - 1
    if retries_left < 1:
        return None
    waits = backoff_intervals(
        policy.max_attempts - 1,
        base=policy.backoff_base_seconds,
        factor=policy.backoff_factor,
        cap=policy.backoff_cap_seconds,
        jitter=policy.backoff_jitter,
    )
    return Retry(max=retries_left, interval=waits[attempts_made:])


def enqueue_attempt(
    queue: Queue,
    job_function: Callable[[str], object],
    task: Task | TaskRead,
    settings: RecoverySettings,
    pipeline: Pipeline | None = None,
) -> Job:
    """Put a task on ``queue`` as a job of ``job_function``, with its type's time limit and retry budget.

    The job id *is* the task id: enqueueing a task that already has a job replaces that job
    instead of adding a second one, and a duplicate that does slip through finds the task
    already claimed (see :func:`run_attempt`). ``meta`` copies the task's type and request id
    for the worker's log lines before it reads the row; the row stays the truth.

    Everything RQ writes (the job's hash, the queue's entry, the set of queues) goes in one
    ``MULTI … EXEC``: one round trip instead of three, and a worker never sees a queue entry
    whose job hash is not written yet. Given a ``pipeline``, the writes join it and the caller
    sends it: one transaction for many tasks.
    """
    if pipeline is None:
        with queue.connection.pipeline() as own:
            job = enqueue_attempt(queue, job_function, task, settings, own)
            own.execute()
        return job
    policy = settings.policy_for(task.task_type)
    return queue.enqueue_call(
        job_function,
        args=(str(task.id),),
        job_id=str(task.id),
        meta={"task_type": task.task_type, "request_id": task.request_id},
        timeout=policy.timeout_seconds,
        retry=retry_for(policy, task.attempts),
        result_ttl=RESULT_TTL_SECONDS,
        failure_ttl=FAILURE_TTL_SECONDS,
        description=f"task {task.id}",
        pipeline=pipeline,
    )


def should_retry(exc: BaseException, attempt: int, policy: RetryPolicy) -> bool:
    """Whether a failed attempt deserves another: not for a permanent error, not past the budget.

    A ``PermanentTaskError`` (an invalid payload raises one too) fails the same way every time,
    so retrying it only delays the dead letter. Everything else, timeouts included, may pass.
    """
    if isinstance(exc, PermanentTaskError):
        return False
    return attempt < policy.max_attempts


def describe_failure(exc: BaseException, job: Job, attempt: int) -> str:
    """The text stored in ``task.error``; a timeout says after how long it was stopped."""
    if isinstance(exc, JobTimeoutException):
        return f"TimeoutError: attempt {attempt} timed out after {job.timeout} s and was stopped"
    return describe_error(exc)


def record_failed_attempt(session: Session, task: Task, policy: RetryPolicy, exc: BaseException, error: str) -> TaskStatus | None:
    """Write what a failed attempt leads to: ``retrying`` or ``failed``; ``None`` if it was cancelled meanwhile."""
    if should_retry(exc, task.attempts, policy):
        return TaskStatus.RETRYING if transitions.mark_retrying(session, task.id, error) else None
    return TaskStatus.FAILED if transitions.mark_failed(session, task.id, error) else None


def run_attempt(
    engine: Engine,
    job: Job,
    task_id: uuid.UUID,
    settings: RecoverySettings,
    events: TaskEvents = NO_EVENTS,
    lease_keeper: LeaseKeeper | None = None,
) -> TaskStatus | None:
    """Claim the task, run its handler under a lease, record the outcome.

    Returns the status the attempt led to, or ``None`` when the task could not be claimed: it
    was cancelled, has finished, or another copy of the job got there first. Raises the
    handler's exception when the task will be retried: that is what tells RQ to retry the job.
    A process that runs many attempts passes its ``lease_keeper``, so no thread is started per
    attempt.
    """
    task = claim_task(engine, task_id, worker=job.worker_name)
    if task is None:
        return None
    events.attempt_started(task, job.enqueued_at)
    started = time.perf_counter()
    policy = settings.policy_for(task.task_type)
    context = TaskContext(
        attempt=task.attempts,
        time_scale=settings.task_time_scale,
        report_progress=lambda percent: record(engine, transitions.record_progress, task_id, percent),
    )
    holder = attempt_holder(job.worker_name)
    lease: AbstractContextManager[object] = (
        TaskLease(job.connection, task_id, holder=holder, ttl_seconds=settings.task_lease_seconds)
        if lease_keeper is None  # a work horse: one attempt, then it exits
        else lease_keeper.hold(task_id, holder=holder)  # a process that runs attempt after attempt
    )
    try:
        with lease:
            result = run_task(task.task_type, task.payload, context)
    except Exception as exc:  # the handler's failure (or RQ's timeout) is this attempt's failure
        # A fresh session: the handler's may be half-way through a statement the timeout interrupted.
        with Session(engine, expire_on_commit=False) as session:
            outcome = record_failed_attempt(session, task, policy, exc, describe_failure(exc, job, task.attempts))
            if outcome is not None:
                events.attempt_ended(task, outcome, time.perf_counter() - started)
        if outcome is TaskStatus.RETRYING:
            raise  # RQ's Retry puts the job back on the queue after its backoff interval
        return outcome

    with Session(engine) as session:
        if not transitions.mark_completed(session, task_id, result):
            # Cancelled while it ran, or taken over by another worker after this one lost its
            # lease (a partition): the row has moved on, so this late write is refused.
            log.warning("task %s: result of attempt %s refused: the task is no longer running here", task_id, task.attempts)
            return None
        # Reported the instant the commit returns, before the connection goes back to the pool
        # (a round trip on PostgreSQL): a process killed between the commit and the count loses
        # the count, so that gap is kept to microseconds.
        events.attempt_ended(task, TaskStatus.COMPLETED, time.perf_counter() - started)
    return TaskStatus.COMPLETED
