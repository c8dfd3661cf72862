"""The reconciler: make Redis agree with the database again, whatever happened to it.

The database is the truth; Redis only says what to run next. Four things break that
agreement, and each leaves a task that nothing will ever move:

1. The API committed the row but could not enqueue it (Redis down): ``pending``, no job.
2. Redis restarted without its data: ``pending`` or ``retrying``, the job gone.
3. A worker died with the task (SIGKILL, OOM, a lost machine): ``running``, nobody running it.
4. The worker that held RQ's scheduler lock died: a retry overdue in the ScheduledJobRegistry,
   which no other scheduler may take over for a minute.

Every pass looks at the unfinished tasks and asks Redis whether something backs each one: a
queued or scheduled job for ``pending``/``retrying``, a live lease (:mod:`recovery.leases`)
for ``running``. A task that stays unbacked for ``RECONCILE_GRACE_SECONDS``, pass after pass,
is repaired: re-enqueued, or (if ``running``) moved on to ``retrying`` or ``failed`` first.
The grace covers the moments when a task is legitimately unbacked: between the API's commit
and its enqueue, between a job starting and claiming its task.

Several reconcilers may run (one beside every worker, plus any ``python -m phaseN_x.reconciler``).
A pass runs only under a Redis lock, so two of them never repair the same task at once.

Phase 3 wrote it; every later phase runs it unchanged, handing it its own queue, the function
that enqueues a task on it, and (phase 4 on) the events it listens to. ``phaseN_x/reconciler.py``
is that wiring and the ``python -m`` entry point.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from types import FrameType

from redis import Redis
from redis.exceptions import LockError, LockNotOwnedError, RedisError
from rq import Queue
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.executions import ExecutionRegistry
from rq.job import Job, JobStatus
from rq.registry import ScheduledJobRegistry, StartedJobRegistry
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, col, select

from shared.models import Task, TaskStatus

from .. import transitions
from ..db import create_db_engine, init_db
from .events import NO_EVENTS, TaskEvents
from .leases import leases_held
from .settings import RecoverySettings, load_settings

#: The lock expires this long after its last renewal. A pass renews it before every repair, so
#: a long pass keeps it; a reconciler killed in the middle of a pass holds it no longer than this.
LOCK_TTL_SECONDS = 5
#: Tasks examined per pass, oldest first: bounds the time (and the lock) one pass takes.
BATCH_SIZE = 1000

#: Job states in which RQ will, by itself, run the job again.
WAITING_JOB_STATES = {JobStatus.QUEUED.value, JobStatus.SCHEDULED.value, JobStatus.DEFERRED.value}

log = logging.getLogger(__name__)  # not __name__: it is "__main__" under -m

#: Enqueues a task on the phase's queue with its phase's job function.
Enqueue = Callable[[Task], Job]


@dataclass
class PassReport:
    """What one pass did, for the log and the tests."""

    enqueued: list[uuid.UUID] = field(default_factory=list)
    recovered: list[uuid.UUID] = field(default_factory=list)
    failed: list[uuid.UUID] = field(default_factory=list)
    promoted: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.enqueued or self.recovered or self.failed or self.promoted)


class Reconciler:
    """Finds orphaned tasks and gives them back to the queue. Safe to run in several places."""

    def __init__(
        self,
        engine: Engine,
        connection: Redis,
        settings: RecoverySettings,
        *,
        queues: Sequence[Queue],
        enqueue: Enqueue,
        events: TaskEvents = NO_EVENTS,
        name: str = "reconciler",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.connection = connection
        self.settings = settings
        self.queues = list(queues)
        self.enqueue = enqueue
        self.events = events
        self.name = name
        self.clock = clock
        #: One lock per phase (its queues share the prefix before the colon, ``phase5:p1`` …),
        #: so phases sharing a Redis each keep their own reconciler.
        self.lock_key = f"{self.queues[0].name.split(':')[0]}:reconciler:lock"
        # (task id, status) → when this reconciler first saw it unbacked. Kept in memory:
        # after a restart the grace simply starts again.
        self._unbacked_since: dict[tuple[uuid.UUID, str], float] = {}

    # ------------------------------------------------------------------------------------------
    # The loop

    def run_forever(self, stop: threading.Event, *, parent_pid: int | None = None) -> None:
        """Pass after pass until ``stop`` is set (or the process ``parent_pid`` is gone).

        An outage of Redis or the database is waited out: the next pass simply tries again.
        """
        log.info(
            "%s: reconciling every %s s (grace %s s)",
            self.name,
            self.settings.reconcile_interval_seconds,
            self.settings.reconcile_grace_seconds,
        )
        while not stop.is_set():
            if parent_pid is not None and os.getppid() != parent_pid:
                log.info("%s: the worker that started me is gone; stopping", self.name)
                return
            try:
                self.run_once()
            except (RedisError, SQLAlchemyError) as exc:  # the next pass tries again
                log.warning("%s: pass failed: %s: %s", self.name, type(exc).__name__, exc)
            stop.wait(self.settings.reconcile_interval_seconds)

    def run_once(self) -> PassReport | None:
        """One pass under the lock; ``None`` when another reconciler holds it right now."""
        lock = self.connection.lock(self.lock_key, timeout=LOCK_TTL_SECONDS, blocking=False)
        if not lock.acquire():
            log.debug("%s: pass skipped, another reconciler holds the lock", self.name)
            return None
        try:
            report = self.reconcile(still_leader=lock.reacquire)
        except LockNotOwnedError:
            log.warning("%s: pass abandoned, it outlived its lock", self.name)
            return None
        finally:
            with suppress(LockError, RedisError):  # expired or Redis gone: it frees itself
                lock.release()
        log.debug("%s: pass done", self.name)
        if report:
            log.info(
                "%s: enqueued %d, recovered %d, failed %d, promoted %d overdue retries",
                self.name,
                len(report.enqueued),
                len(report.recovered),
                len(report.failed),
                len(report.promoted),
            )
        return report

    # ------------------------------------------------------------------------------------------
    # One pass

    def reconcile(self, still_leader: Callable[[], object] = lambda: None) -> PassReport:
        """Repair what has been orphaned for the whole grace; ``still_leader`` renews the lock
        before each repair, and raises ``LockNotOwnedError`` if it was lost (the pass stops)."""
        report = PassReport(promoted=self.promote_overdue_retries())
        tasks = self.unfinished_tasks()
        for task in self.orphaned_for_the_whole_grace(self.unbacked(tasks)):
            still_leader()
            self.repair(task, report)
        return report

    def unfinished_tasks(self) -> list[Task]:
        with Session(self.engine, expire_on_commit=False) as session:
            query = (
                select(Task)
                .where(col(Task.status).in_([TaskStatus.PENDING, TaskStatus.RETRYING, TaskStatus.RUNNING]))
                .order_by(col(Task.created_at))
                .limit(BATCH_SIZE)
            )
            return list(session.exec(query).all())

    def unbacked(self, tasks: list[Task]) -> list[Task]:
        """The tasks nothing in Redis will move forward: no waiting job, or no live attempt."""
        running = [t for t in tasks if t.status == TaskStatus.RUNNING]
        waiting = [t for t in tasks if t.status != TaskStatus.RUNNING]
        held = leases_held(self.connection, [t.id for t in running])
        backed = self.waiting_jobs([t.id for t in waiting])
        return [t for t in running if not held[t.id]] + [t for t in waiting if not backed[t.id]]

    def waiting_jobs(self, task_ids: list[uuid.UUID]) -> dict[uuid.UUID, bool]:
        """For each task, whether RQ will run its job by itself: queued (really in the list) or scheduled.

        A job that is gone (a wiped Redis) or over (finished, failed, stopped) while its task is
        not, backs nothing. Neither does a "queued" job in no list: a worker dequeued it and died
        before starting it. Two round trips for the whole batch.
        """
        job_ids = [str(task_id) for task_id in task_ids]
        statuses = self.connection.pipeline(transaction=False)
        for job_id in job_ids:
            statuses.hmget(Job.key_for(job_id), "status", "origin")
        fields = dict(zip(job_ids, statuses.execute(), strict=True))
        status_of = {job_id: raw.decode() if raw else None for job_id, (raw, _) in fields.items()}
        queued = [job_id for job_id in job_ids if status_of[job_id] == JobStatus.QUEUED.value]
        positions = self.connection.pipeline(transaction=False)
        for job_id in queued:
            origin = fields[job_id][1]  # the queue the job waits in (a phase may have several)
            positions.lpos(f"{Queue.redis_queue_namespace_prefix}{origin.decode() if origin else ''}", job_id)
        in_list = {job_id for job_id, position in zip(queued, positions.execute(), strict=True) if position is not None}
        return {
            uuid.UUID(job_id): job_id in in_list or status_of[job_id] in WAITING_JOB_STATES - {JobStatus.QUEUED.value}
            for job_id in job_ids
        }

    def orphaned_for_the_whole_grace(self, unbacked: list[Task]) -> list[Task]:
        """Of the tasks unbacked now, those that have been unbacked at every pass for the grace period."""
        now = self.clock()
        current = {(t.id, str(t.status)): t for t in unbacked}
        self._unbacked_since = {key: self._unbacked_since.get(key, now) for key in current}
        grace = self.settings.reconcile_grace_seconds
        return [task for key, task in current.items() if now - self._unbacked_since[key] >= grace]

    def repair(self, task: Task, report: PassReport) -> None:
        """Give an orphaned task back to the queue; a dead attempt is counted and closed first."""
        with Session(self.engine, expire_on_commit=False) as session:
            if task.status == TaskStatus.RUNNING:
                policy = self.settings.policy_for(task.task_type)
                error = f"WorkerLost: attempt {task.attempts} stopped renewing its lease; the worker running it is presumed dead"
                if task.attempts >= policy.max_attempts:
                    if transitions.mark_failed(session, task.id, error, only_from=[TaskStatus.RUNNING]):
                        report.failed.append(task.id)
                        self.events.attempt_lost(task, TaskStatus.FAILED, "reconciler")
                        self.events.task_repaired(task.id, "failed")
                        log.warning("%s: task %s failed: %s (no attempts left)", self.name, task.id, error)
                    return
                if not transitions.mark_retrying(session, task.id, error):
                    return  # it finished after all, or someone else repaired it
                report.recovered.append(task.id)
                self.events.attempt_lost(task, TaskStatus.RETRYING, "reconciler")
                self.events.task_repaired(task.id, "recovered")
            fresh = session.get(Task, task.id, populate_existing=True)
        if fresh is None or fresh.status not in (TaskStatus.PENDING, TaskStatus.RETRYING):
            return
        self.clear_dead_executions(str(fresh.id))
        self.enqueue(fresh)
        self._unbacked_since.pop((task.id, str(task.status)), None)
        report.enqueued.append(fresh.id)
        self.events.task_repaired(fresh.id, "enqueued")
        log.info("%s: enqueued task %s (%s, attempt %d next)", self.name, fresh.id, fresh.status, fresh.attempts + 1)

    def clear_dead_executions(self, job_id: str) -> None:
        """Drop what RQ still records of a dead attempt before the job is enqueued again.

        Left in the StartedJobRegistry, RQ's own cleanup would find the entry a minute later,
        call it abandoned and retry the job a second time. Left in the job's ExecutionRegistry,
        it outlives its execution's data by a minute, and RQ 3.0 then fails the next run of the
        job while cleaning up after it ("Execution … not found in Redis").
        """
        for queue in self.queues:
            started = StartedJobRegistry(queue=queue)
            for entry_job_id, execution_id in started.get_job_and_execution_ids(cleanup=False):
                if entry_job_id == job_id:
                    self.connection.zrem(started.key, f"{entry_job_id}:{execution_id}")
        self.connection.delete(ExecutionRegistry(job_id, connection=self.connection).key)

    def promote_overdue_retries(self) -> list[str]:
        """Move retries that are overdue by more than the grace from the scheduled registry to the queue.

        RQ's scheduler does this every second, under a lock that outlives a killed scheduler by
        60 s. Only jobs it has clearly missed are touched; ``requeue`` removes the entry with a
        ZREM that only one caller can win, so the scheduler and we never both enqueue a job.
        """
        promoted = []
        for queue in self.queues:
            registry = ScheduledJobRegistry(queue=queue)
            for job_id in registry.get_jobs_to_schedule(int(time.time() - self.settings.reconcile_grace_seconds)):
                with suppress(InvalidJobOperation, NoSuchJobError):  # the scheduler got there first
                    registry.requeue(job_id)
                    promoted.append(job_id)
                    self.events.task_repaired(uuid.UUID(job_id), "promoted")
        return promoted


# ----------------------------------------------------------------------------------------------
# python -m phaseN_x.reconciler

#: Builds a phase's reconciler from what every process has: engine, Redis, settings, a name.
ReconcilerFactory = Callable[[Engine, Redis, RecoverySettings, str], Reconciler]


def parse_args(argv: Sequence[str] | None, prog: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Re-enqueue tasks Redis lost and recover tasks whose worker died. "
        "Safe to run beside the workers' own reconcilers.",
    )
    parser.add_argument("--name", default="reconciler", help="name shown in the log (default: reconciler)")
    parser.add_argument("--log-level", default="INFO", help="logging level (default: INFO)")
    parser.add_argument("--parent", type=int, default=None, help=argparse.SUPPRESS)  # set by a worker: exit with it
    return parser.parse_args(argv)


def configure_plain_logging(level: str) -> None:
    """Phase 3's log lines: plain text on stderr (phase 4 replaces this with structured logs)."""
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s", datefmt="%H:%M:%S")


def run_reconciler(
    argv: Sequence[str] | None,
    *,
    prog: str,
    build: ReconcilerFactory,
    settings: RecoverySettings | None = None,
    configure_logging: Callable[[str], None] = configure_plain_logging,
) -> int:
    """The body of a phase's ``python -m phaseN_x.reconciler``: run passes until SIGTERM or Ctrl-C."""
    args = parse_args(argv, prog)
    settings = settings or load_settings()
    if not settings.redis_url:
        print("REDIS_URL is not set: the reconciler needs the Redis the workers use.", file=sys.stderr)
        return 2
    configure_logging(args.log_level)
    engine = create_db_engine(settings.database_url, busy_timeout_ms=settings.db_busy_timeout_ms)
    init_db(engine)
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    reconciler = build(engine, Redis.from_url(settings.redis_url, socket_timeout=5), settings, args.name)
    reconciler.run_forever(stop, parent_pid=args.parent)
    engine.dispose()
    return 0
