"""A supervised pool of worker processes, no fork per job: phase 5's ``worker --processes N``.

Phase 5 teaches it (``python -m phase5_scaling.worker``); phase 6 runs it unchanged in its
containers, so it lives here once.

Phase 4 runs one RQ worker per process, and RQ forks a work horse for every job: about 40 ms
per job before any work is done. Phase 5 keeps RQ but runs its ``SimpleWorker``, which runs
each job in the worker process itself. The fork bought isolation (a job that crashes the
interpreter took its horse, not the worker); here it takes the pool process, and the
supervisor replaces it and repairs its task.

The process you start is the **supervisor**. It runs no task itself. It

* starts N **pool processes** (``NAME-1`` … ``NAME-N``), each an RQ ``SimpleWorker`` on the five
  priority queues, highest first; one that dies is replaced within a second, with a growing
  wait if it keeps dying right after it starts;
* runs what the pool needs once, whatever N is, as threads: the reconciler, RQ's scheduler
  (it enqueues retries when their backoff is over) and the aging loop
  (:mod:`scaling.priorities`). Phase 4 ran a reconciler process beside every worker, and
  RQ forked a scheduler process from one of them;
* serves the whole pool's metrics on one ``--metrics-port``: the pool processes write their
  files into the supervisor's metrics directory, each under its own name;
* stops the pool: the first SIGTERM or Ctrl-C lets running attempts finish for
  ``--grace-seconds``, then kills what is left; a second one kills at once. Either way no task is
  left ``running``: the supervisor moves a killed attempt on, and the reconciler (of this pool,
  or of the next one started) enqueues it again.

A pool process runs this module's ``main`` with ``--child``, a hidden option, started as
``python -m scaling.pool_process`` (which skips an import it does not need); the phase's
own ``worker`` module is only the entry point a reader types.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from redis import Redis
from redis.client import Pipeline
from redis.exceptions import RedisError
from rq import Queue, SimpleWorker
from rq.exceptions import StopRequested
from rq.executions import Execution
from rq.job import Job
from rq.scheduler import RQScheduler
from rq.serializers import JSONSerializer
from rq.utils import now
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, col, select

from shared.models import Task, TaskStatus

from .. import transitions
from ..db import create_db_engine, engine_for_this_process, init_db
from ..monitoring import aggregates
from ..monitoring.logs import configure_logging, get_logger, job_log_context
from ..monitoring.metrics import MULTIPROC_DIR_ENV, MetricsDirectories, serve_in_thread, use_directory
from ..recovery.events import TaskEvents
from ..recovery.worker import STOP_REQUESTED, request_process_stop, run_worker_loop, warm_engine
from ..worker_pubsub import PromptPubSubWorker
from .bookkeeping import OneTripBookkeeping, PriorityQueues, WithoutPerJobLines
from .jobs import PRIORITIES, QUEUE_NAMES, lease_keeper, make_queues, worker_events, worker_settings
from .pool_process import interpreter_options
from .priorities import promote_overdue
from .reconciler import build_reconciler
from .settings import ScalingSettings

log = get_logger(__name__)

#: How often the supervisor looks at its processes: a dead one is noticed within this.
POLL_INTERVAL_SECONDS = 0.1
#: A process that lived this long was healthy: if it dies now, it is replaced at once.
HEALTHY_UPTIME_SECONDS = 5.0
#: The first wait before restarting a process that keeps dying at start; it doubles each time.
RESTART_BACKOFF_BASE_SECONDS = 0.5
#: How long the supervisor waits for its threads (reconciler, scheduler, aging) when it exits.
THREAD_JOIN_SECONDS = 5.0
#: The supervisor's Redis calls (reconciler, aging, cleanup) give up after this, never hang.
REDIS_SOCKET_TIMEOUT_SECONDS = 5.0
#: A pool started without a name gets this many random hex digits: short enough to read in logs.
POOL_NAME_HEX_DIGITS = 8
#: The signal a pool process sends itself to stop the job it runs (SIGALRM is RQ's time limit).
STOP_JOB_SIGNAL = signal.SIGUSR1
#: The work loop's own heartbeats are sent at most this often (RQ sends three per job); the
#: worker's key lives ``worker_ttl + 60`` seconds, so this only removes repeats.
HEARTBEAT_MIN_INTERVAL_SECONDS = 2.0
#: Linux's prctl() option "send me this signal when my parent dies" (<linux/prctl.h>).
PR_SET_PDEATHSIG = 1
#: A pool process's SQLite page cache, per connection (SQLite's default: 2000 KiB). Its queries
#: read a task by key; what they miss comes from the OS's cache (docs/05-scaling.md).
POOL_SQLITE_CACHE_KIB = 256
#: A pool process runs a full garbage collection after this many jobs (see PoolWorker.perform_job).
FULL_COLLECTION_EVERY_JOBS = 100


# ----------------------------------------------------------------------------------------------
# A pool process: RQ's SimpleWorker on the five queues


class AttemptStopped(BaseException):
    """Raised in a pool process's main thread when the task it runs was cancelled.

    A ``BaseException``, like RQ's own job timeout, so the attempt's ``except Exception`` does not
    record it as a failure: the API has already moved the task to ``cancelled``, and RQ marks the
    job ``stopped`` (not failed, never retried) because the stop was asked for.
    """


class PoolWorker(PromptPubSubWorker, OneTripBookkeeping, SimpleWorker):
    """RQ's SimpleWorker (each job runs here, no fork), with the task's log context bound, and a
    command thread that lets it exit at once (:mod:`worker_pubsub`).

    Its Redis bookkeeping per job is RQ's, sent in fewer round trips (:mod:`scaling.bookkeeping`).

    The job's time limit still holds: SimpleWorker enforces it with SIGALRM in this process's
    main thread, and the attempt records the timeout like any failure. So does a cancel: RQ's
    stop-job command ends the attempt (:meth:`kill_horse`).
    """

    #: Read by :func:`run_worker_loop`: a loop that ended on SIGTERM is not started again.
    stop_requested = False
    #: The job :meth:`perform_job` is running, if any: only that job may be interrupted.
    performing_job_id: str | None = None
    #: Jobs performed since the last full garbage collection.
    jobs_since_collection = 0

    # -- cancelling a running task ---------------------------------------------------------------
    # The API cancels a running task by sending RQ's stop-job command. RQ's forking worker then
    # kills the work horse; a SimpleWorker has none, and RQ's kill_horse() does nothing, so the
    # attempt would run to its end. Here the "horse" is this process's main thread: the command
    # (received on RQ's pubsub thread) sends this process a signal, whose handler raises in the
    # main thread, between two bytecodes of the job.

    def _install_signal_handlers(self) -> None:
        super()._install_signal_handlers()  # type: ignore[no-untyped-call]  # unannotated in RQ
        signal.signal(STOP_JOB_SIGNAL, self.stop_current_job)

    def kill_horse(self, sig: signal.Signals = signal.SIGKILL) -> None:
        """RQ's "kill the horse that runs the job": interrupt the job in this process instead."""
        os.kill(os.getpid(), STOP_JOB_SIGNAL)

    def stop_current_job(self, signum: int, frame: FrameType | None) -> None:
        # Only the job the stop was asked for, and only while it runs: a late signal finds
        # performing_job_id changed (or None) and does nothing.
        if self.performing_job_id is not None and self.performing_job_id == self._stopped_job_id:
            raise AttemptStopped(f"job {self.performing_job_id} stopped by request")

    def perform_job(self, job: Job, queue: Queue, execution: Execution) -> bool:
        self.performing_job_id = job.id
        try:
            return super().perform_job(job, queue, execution)
        finally:
            self.performing_job_id = None
            self.collect_now_and_then()

    def collect_now_and_then(self) -> None:
        """A full collection every :data:`FULL_COLLECTION_EVERY_JOBS` jobs: it empties the interpreter's free lists.

        CPython keeps freed tuples, lists, dicts and floats on free lists for reuse (up to 2000
        tuples of each length), and only a full collection empties them. Left to itself, a pool
        process runs one every thousand jobs or so, and its free lists fill up in between: about
        1 MB. After :func:`gc.freeze` (at start-up, in :func:`run_pool_process`) a full
        collection only looks at what the jobs created since: 0.08 ms, where the same collection
        over everything the imports built takes 18 ms.
        """
        self.jobs_since_collection += 1
        if FULL_COLLECTION_EVERY_JOBS and self.jobs_since_collection >= FULL_COLLECTION_EVERY_JOBS:
            self.jobs_since_collection = 0
            gc.collect()

    # RQ's loop talks to Redis about the worker itself several times per job: a heartbeat
    # (3 commands) before the dequeue, after it and after the job, and its state ("idle") twice.
    # Each is a round trip, and for a short job they cost more than the job. The three methods
    # below keep what those calls are for (the worker's key never expires while it lives; its
    # state is right) and drop the repeats. Measured in docs/05-scaling.md.

    def heartbeat(self, timeout: int | None = None, pipeline: Pipeline | None = None) -> None:
        """RQ's heartbeat, but at most once per :data:`HEARTBEAT_MIN_INTERVAL_SECONDS` from the loop.

        A heartbeat keeps the worker's key alive for ``worker_ttl + 60`` seconds; one per job
        adds nothing when jobs take milliseconds. Heartbeats with their own timeout (the one
        before a job, sized to the job's time limit) or inside a pipeline are always sent.
        """
        if STOP_REQUESTED.is_set() and not self.stop_requested and self.get_state() != "busy":
            self.stop_requested = True  # a stop RQ's handler lost in a reconnect: end the idle loop here
            raise StopRequested
        if (
            timeout is None
            and pipeline is None
            and self.last_heartbeat is not None
            and (now() - self.last_heartbeat).total_seconds() < HEARTBEAT_MIN_INTERVAL_SECONDS
        ):
            return
        super().heartbeat(timeout, pipeline)

    def set_state(self, state: str, pipeline: Pipeline | None = None) -> None:
        """RQ's ``set_state``, without re-sending a state Redis already has (RQ sets "idle" twice per job)."""
        if pipeline is None and state == self._state:
            return
        super().set_state(state, pipeline)

    def handle_execution_ended(self, job: Job, queue: Queue, heartbeat_ttl: int) -> None:
        """Stamp the end; skip RQ's job heartbeat here: the job is finalized next, in this same thread."""
        job.ended_at = now()

    #: Set by run_pool_process: how long after a stop request this process may still run.
    stop_grace_seconds: float | None = None

    def request_stop(self, signum: int, frame: FrameType | None) -> None:
        self.stop_requested = True
        # Sticky, and bounded: the supervisor may be dead (this is its parent-death signal) and
        # Redis with it; the process ends within the grace whatever RQ's reconnects do.
        request_process_stop(self.stop_grace_seconds)
        super().request_stop(signum, frame)  # type: ignore[no-untyped-call]  # unannotated in RQ

    def execute_job(self, job: Job, queue: Queue) -> None:
        # Same process for every job: the context is cleared after each, so the next job's lines
        # (and RQ's lines between jobs) never carry this task's id.
        # No "task dequeued" line: "attempt started" follows within microseconds, and a line
        # costs as much as a round trip (docs/05-scaling.md). Every line carries the queue.
        with job_log_context(job, self.name, queue.name, announce=False):
            super().execute_job(job, queue)


def build_pool_worker(connection: Redis, settings: ScalingSettings, name: str) -> PoolWorker:
    """One pool process's RQ worker: the five queues highest first, so RQ takes the most urgent job."""
    worker = PoolWorker(
        list(QUEUE_NAMES),  # RQ builds them as PriorityQueues, with the worker's JSON serializer
        connection=connection,
        serializer=JSONSerializer,
        queue_class=PriorityQueues,
        name=name,
        worker_ttl=settings.rq_worker_ttl_seconds,
        maintenance_interval=settings.rq_maintenance_interval_seconds,
        job_monitoring_interval=settings.rq_job_monitoring_interval_seconds,
    )
    worker.log_job_description = False  # its dequeue line is then the one WithoutPerJobLines drops
    worker.log = WithoutPerJobLines(worker.log)  # type: ignore[assignment]  # RQ only calls its logging methods
    worker.leases = lease_keeper(connection)  # the same keeper process_task holds its leases with
    worker.log_result_lifespan = False  # "result discarded immediately", for every job: result_ttl is always 0
    worker.max_connection_wait_time = settings.redis_reconnect_max_seconds  # RQ waits up to 60 s
    worker.stop_grace_seconds = settings.pool_grace_seconds
    return worker


def pool_process_identity() -> str:
    """The name of this process's metrics files in the supervisor's directory: one set per process."""
    return f"pool-{os.getpid()}"


def exit_with_supervisor(supervisor_pid: int) -> bool:
    """Ask Linux to SIGTERM this process when the supervisor dies; ``False`` if it is already gone.

    A supervisor killed with SIGKILL cannot stop its pool. Without this its processes would go
    on taking jobs with nobody to replace or stop them. SIGTERM is RQ's warm shutdown: the
    current attempt finishes, then the process exits.
    """
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    return os.getppid() == supervisor_pid  # it may have died before we asked


def run_pool_process(args: argparse.Namespace, settings: ScalingSettings) -> int:
    """The body of ``--child``: one RQ SimpleWorker until SIGTERM (or, with ``--burst``, empty queues)."""
    if args.grace_seconds is not None:
        settings = settings.model_copy(update={"pool_grace_seconds": args.grace_seconds})
    if args.parent is not None and not exit_with_supervisor(args.parent):
        return 0
    directory = os.environ.get(MULTIPROC_DIR_ENV)
    if not directory:
        print(f"{MULTIPROC_DIR_ENV} is not set: a pool process is started by the supervisor", file=sys.stderr)
        return 2
    # The directory first, the metric objects second: a value created before use_directory()
    # would live in this process's memory and die with it.
    use_directory(Path(directory), pool_process_identity)
    worker_events().metrics.initialize_series()
    engine = engine_for_this_process(
        settings.database_url, busy_timeout_ms=settings.db_busy_timeout_ms, sqlite_cache_kib=POOL_SQLITE_CACHE_KIB
    )
    warm_engine(engine)  # the job's SQL compiled once, before the first job instead of during it
    assert settings.redis_url, "main() checks REDIS_URL before starting a pool process"
    connection = Redis.from_url(settings.redis_url)
    log.info("pool process starting", worker=args.name, pid=os.getpid())
    # What start-up built lives as long as the process: moved out of the collector's sight, so the
    # full collections of PoolWorker.collect_now_and_then only scan what the jobs create.
    gc.collect()
    gc.freeze()
    try:
        return run_worker_loop(
            lambda: build_pool_worker(connection, settings, args.name),
            name=args.name,
            burst=args.burst,
            log_level=args.log_level,
            reconnect_seconds=settings.redis_reconnect_max_seconds,
            # The supervisor runs the scheduler. A pool process that took its locks would fork a
            # scheduler process of its own, which no parent-death signal reaches.
            with_scheduler=False,
        )
    finally:
        engine.dispose()


# ----------------------------------------------------------------------------------------------
# Repairs the supervisor makes when a pool process is gone


def close_orphaned_attempts(
    engine: Engine,
    settings: ScalingSettings,
    events: TaskEvents,
    worker_name: str,
    error_for: Callable[[Task], str],
) -> list[uuid.UUID]:
    """Move on every task still ``running`` under ``worker_name``, whose process has exited.

    A claim writes the process's name into ``task.worker``, and only a live process runs an
    attempt under its name. The supervisor calls this after the process exited and before a
    new one takes the name, so every such row is an attempt nobody will finish. Like the
    reconciler, it moves the row to ``retrying`` (the reconciler then enqueues it again) or,
    with no attempts left, to ``failed``, with compare-and-set writes: an attempt that did
    finish after all is left alone.

    The database, not RQ's record of the worker's current job, decides: it is the truth, it
    answers when Redis does not, and it also catches an attempt that RQ gave up on without
    telling the task (a cold shutdown raises ``SystemExit`` through the job).
    """
    repaired: list[uuid.UUID] = []
    try:
        with Session(engine, expire_on_commit=False) as session:
            query = select(Task).where(col(Task.status) == TaskStatus.RUNNING, col(Task.worker) == worker_name)
            orphans = list(session.exec(query).all())
        for task in orphans:
            # One short session per write, each starting with its UPDATE: on SQLite a transaction
            # that read first and then writes can fail at once with SQLITE_BUSY.
            with Session(engine) as session:
                error = error_for(task)
                if task.attempts >= settings.policy_for(task.task_type).max_attempts:
                    if transitions.mark_failed(session, task.id, error, only_from=[TaskStatus.RUNNING]):
                        events.attempt_lost(task, TaskStatus.FAILED, "supervisor")
                        repaired.append(task.id)
                elif transitions.mark_retrying(session, task.id, error):
                    events.attempt_lost(task, TaskStatus.RETRYING, "supervisor")
                    repaired.append(task.id)
    except SQLAlchemyError:
        # The database is down: the task's lease lapses and the reconciler repairs it later.
        log.exception("could not close the attempts of a dead pool process", worker=worker_name)
    return repaired


def forget_worker(connection: Redis, name: str) -> None:
    """Mark a killed pool process dead in RQ, so its replacement can register under its name at once.

    A process killed with SIGKILL never unregisters, and RQ refuses a second live worker of the
    same name for as long as the old entry lives (its TTL is minutes).
    """
    try:
        SimpleWorker([], name=name, connection=connection, prepare_for_work=False).register_death()
    except RedisError as exc:  # the replacement then fails to register, and is restarted after a wait
        log.warning("could not unregister a dead pool process", worker=name, error=str(exc))


def describe_exit(returncode: int) -> str:
    """``signal 9`` or ``exit status 1``, from :attr:`subprocess.Popen.returncode`."""
    return f"signal {-returncode}" if returncode < 0 else f"exit status {returncode}"


# ----------------------------------------------------------------------------------------------
# The supervisor


@dataclass
class Slot:
    """One place in the pool: its name stays (``NAME-2``), its process changes when one dies."""

    name: str
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    #: Deaths since its process last lived HEALTHY_UPTIME_SECONDS: the more, the longer the next wait.
    quick_deaths: int = 0
    restart_at: float = 0.0
    #: ``--burst``: the process emptied the queues and exited 0; it is not replaced.
    finished: bool = False


def restart_delay(quick_deaths: int, cap_seconds: float) -> float:
    """No wait after one quick death; then 0.5 s, 1 s, 2 s … up to ``cap_seconds``.

    A process that dies at start (a bad setting, the database down) would otherwise be
    restarted ten times a second, flooding the logs and the machine.
    """
    if quick_deaths <= 1:
        return 0.0
    return float(min(cap_seconds, RESTART_BACKOFF_BASE_SECONDS * 2 ** (quick_deaths - 2)))


def has_exited(process: subprocess.Popen[bytes]) -> bool:
    """Whether a child has exited, *without* reaping it: until it is reaped, its pid (and so its
    process group id) cannot be given to another process, so killing that group stays safe."""
    if process.returncode is not None:
        return True
    try:
        return os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:  # already reaped
        return True


def signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    """Signal a pool process and whatever it started (RQ forks its scheduler from one of them)."""
    with suppress(ProcessLookupError):  # the whole group is gone already
        os.killpg(process.pid, signum)


class Supervisor:
    """Keeps N pool processes running; stops them gracefully, then by force.

    Signal handlers only set flags; the loop in :meth:`run` acts on them at its next turn
    (every :data:`POLL_INTERVAL_SECONDS`). A handler that waited or took locks could deadlock
    with the code it interrupted.
    """

    def __init__(
        self,
        pool_name: str,
        processes: int,
        command: Callable[[Slot], list[str]],
        *,
        burst: bool,
        grace_seconds: float,
        backoff_cap_seconds: float,
        on_exit: Callable[[Slot, int, int, bool], None],
        on_stop: Callable[[], None],
        env: dict[str, str],
    ) -> None:
        self.slots = [Slot(f"{pool_name}-{index}") for index in range(1, processes + 1)]
        self.command = command
        self.burst = burst
        self.grace_seconds = grace_seconds
        self.backoff_cap_seconds = backoff_cap_seconds
        self.on_exit = on_exit  # (slot, pid, return code, stopping): repair and unregister
        self.on_stop = on_stop  # the first signal: stop the aging and the reconciler
        self.env = env
        self.signals_received = 0
        self.stop_deadline: float | None = None

    # -- signals --------------------------------------------------------------------------------

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.handle_signal)
        signal.signal(signal.SIGINT, self.handle_signal)

    def handle_signal(self, signum: int, frame: FrameType | None) -> None:
        self.signals_received += 1

    @property
    def stopping(self) -> bool:
        return self.signals_received > 0

    # -- the loop -------------------------------------------------------------------------------

    def run(self) -> int:
        """Start the pool and keep it running until a stop (or, in burst mode, until the queues are empty).

        Returns 0 after a stop too, forced or not: the attempts it cut short are already moved on.
        """
        self.install_signal_handlers()
        for slot in self.slots:
            self.start(slot)
        while not self.finished():
            self.reap()
            if self.signals_received >= 2:
                self.kill_all("second signal")
            elif self.stopping:
                self.drain()
            else:
                self.restart_due()
            time.sleep(POLL_INTERVAL_SECONDS)
        log.info("pool stopped" if self.stopping else "pool done: the queues are empty")
        return 0

    def finished(self) -> bool:
        if self.stopping:
            return not self.alive()
        return self.burst and all(slot.finished for slot in self.slots)

    def alive(self) -> list[Slot]:
        return [slot for slot in self.slots if slot.process is not None]

    def start(self, slot: Slot) -> None:
        slot.process = subprocess.Popen(
            self.command(slot),
            env=self.env,
            # A process group of its own: a terminal's Ctrl-C reaches the supervisor only, which
            # decides for the pool, and killing the group also kills RQ's scheduler if the
            # process started one. Set between fork and exec, safely beside our threads.
            process_group=0,
        )
        slot.started_at = time.monotonic()
        log.info("pool process started", worker=slot.name, pid=slot.process.pid)

    def reap(self) -> None:
        """Notice every pool process that exited, repair what it left, and plan its replacement."""
        now = time.monotonic()
        for slot in self.alive():
            assert slot.process is not None
            if not has_exited(slot.process):
                continue
            signal_group(slot.process, signal.SIGKILL)  # RQ's scheduler must not outlive its worker
            pid, returncode = slot.process.pid, slot.process.wait()
            slot.process = None
            log.info("pool process exited", worker=slot.name, pid=pid, status=describe_exit(returncode))
            self.on_exit(slot, pid, returncode, self.stopping)
            if self.stopping:
                continue
            if self.burst and returncode == 0:
                slot.finished = True  # it found the queues empty
                continue
            if now - slot.started_at >= HEALTHY_UPTIME_SECONDS:
                slot.quick_deaths = 0  # it had been working: replace it at once
            slot.quick_deaths += 1
            slot.restart_at = now + restart_delay(slot.quick_deaths, self.backoff_cap_seconds)
            if slot.restart_at > now:
                log.warning(
                    "pool process keeps dying at start; waiting before the next restart",
                    worker=slot.name,
                    deaths_in_a_row=slot.quick_deaths,
                    wait_seconds=slot.restart_at - now,
                )

    def restart_due(self) -> None:
        now = time.monotonic()
        for slot in self.slots:
            if slot.process is None and not slot.finished and now >= slot.restart_at:
                self.start(slot)

    # -- stopping -------------------------------------------------------------------------------

    def drain(self) -> None:
        """First signal: let running attempts finish for the grace period, then kill."""
        if self.stop_deadline is None:
            self.stop_deadline = time.monotonic() + self.grace_seconds
            log.info("pool stopping: running attempts may finish", grace_seconds=self.grace_seconds)
            self.on_stop()
            for slot in self.alive():
                assert slot.process is not None
                if not has_exited(slot.process):
                    # The process only, not its group: RQ's warm shutdown (finish the job, take
                    # no more) then stops its scheduler itself.
                    os.kill(slot.process.pid, signal.SIGTERM)
        elif time.monotonic() >= self.stop_deadline and self.alive():
            self.kill_all("grace period over")

    def kill_all(self, reason: str) -> None:
        """SIGKILL every pool process still alive; :meth:`reap` then repairs their tasks."""
        if self.stop_deadline is None:  # a second signal before the loop saw the first
            self.stop_deadline = time.monotonic()
            self.on_stop()
        for slot in self.alive():
            assert slot.process is not None
            if not has_exited(slot.process):
                log.warning("killing pool process", worker=slot.name, pid=slot.process.pid, reason=reason)
                signal_group(slot.process, signal.SIGKILL)


# ----------------------------------------------------------------------------------------------
# The supervisor's threads: what the pool needs once, whatever its size


def run_aging(connection: Redis, settings: ScalingSettings, stop: threading.Event) -> None:
    """Every ``AGING_INTERVAL_SECONDS``, move jobs that waited past their level's bound to the front."""
    queues = make_queues(connection)
    while not stop.wait(settings.aging_interval_seconds):
        try:
            promotions = promote_overdue(connection, queues, PRIORITIES, settings.priority_max_wait_seconds)
        except RedisError as exc:  # Redis is down: the next pass tries again
            log.warning("aging pass failed", error=f"{type(exc).__name__}: {exc}")
            continue
        for promotion in promotions:
            log.info(
                "task promoted",
                task_id=promotion.job_id,
                from_priority=promotion.from_priority,
                waited_seconds=round(promotion.waited_seconds, 3),
            )


def hold_scheduler(connection: Redis, pool_name: str) -> RQScheduler:
    """RQ's scheduler for the five queues, its locks taken before any pool process starts.

    Every RQ worker started ``with_scheduler`` (as :func:`run_worker_loop` starts them) tries
    to take these locks, and the one that gets them forks a scheduler process: 60 MB more for
    a loop that wakes once a second. Held here first, the pool processes find them taken and
    fork nothing. Should this supervisor lose them (a Redis restart), a pool process takes over
    at its next maintenance, as in phase 4.
    """
    scheduler = RQScheduler(list(QUEUE_NAMES), connection=connection, serializer=JSONSerializer, name=f"{pool_name}-scheduler")
    try:
        scheduler.acquire_locks()
        scheduler.register_birth()
    except RedisError as exc:  # Redis is down: run_scheduler takes the locks when it is back
        log.warning("could not take the scheduler locks", error=f"{type(exc).__name__}: {exc}")
    return scheduler


def run_scheduler(scheduler: RQScheduler, stop: threading.Event) -> None:
    """RQ's scheduler loop (``RQScheduler.work()`` without its signal handlers: only the main
    thread may install them, and the supervisor's own decide when the pool stops)."""
    every_queue = set(QUEUE_NAMES)
    try:
        while not stop.wait(scheduler.interval):
            try:
                if scheduler.acquired_locks != every_queue:  # a crashed scheduler's locks lapse in a minute
                    scheduler.acquire_locks()
                scheduler.heartbeat()
                scheduler.enqueue_scheduled_jobs()
            except RedisError as exc:  # Redis is down: the next pass tries again
                log.warning("scheduler pass failed", error=f"{type(exc).__name__}: {exc}")
    finally:
        with suppress(RedisError):  # the next pool takes the locks at once instead of in a minute
            scheduler.release_locks()
            scheduler.register_death()


def start_thread(name: str, target: Callable[[], None]) -> threading.Thread:
    """A daemon thread: it never keeps the supervisor alive after the pool stopped."""
    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    return thread


def supervisor_identity() -> str:
    """The supervisor's own metrics files: the repairs it makes when a pool process dies."""
    return f"supervisor-{os.getpid()}"


def pool_process_command(slot: Slot, args: argparse.Namespace, interpreter: list[str] | None = None) -> list[str]:
    """The command line of one pool process; ``interpreter`` are Python's own options (``-OO``)."""
    # Not ``-m scaling.pool``: the same main, minus imports a pool process does not need.
    command = [sys.executable, *(interpreter or []), "-m", f"{__package__}.pool_process", "--child", "--name", slot.name]
    command += ["--log-level", args.log_level, "--parent", str(os.getpid())]
    if getattr(args, "grace_seconds", None) is not None:  # the child's own bound after a stop: the pool's
        command += ["--grace-seconds", str(args.grace_seconds)]
    return command + (["--burst"] if args.burst else [])


def lost_attempt_error(slot: Slot, pid: int, returncode: int, stopping: bool) -> Callable[[Task], str]:
    """The ``task.error`` of an attempt whose pool process is gone: stopped by us, or died."""
    if stopping:
        return lambda task: f"WorkerStopped: pool stopped during attempt {task.attempts}"
    cause = describe_exit(returncode)
    return lambda task: f"WorkerCrash: pool process {slot.name} (pid {pid}) died ({cause}) during attempt {task.attempts}"


def run_supervisor(args: argparse.Namespace, settings: ScalingSettings) -> int:
    """The supervisor's body: metrics, reconciler, aging, and the pool."""
    directories = MetricsDirectories.claim(settings.metrics_root, "pool")
    assert directories.own is not None
    use_directory(directories.own, supervisor_identity)  # also tells the pool processes where to write
    events = worker_events()
    events.metrics.initialize_series()  # every series at 0 from the first scrape
    if args.metrics_port is not None:
        serve_in_thread(directories, settings.metrics_host, args.metrics_port)

    engine = create_db_engine(settings.database_url, busy_timeout_ms=settings.db_busy_timeout_ms)
    init_db(engine)  # the table exists before the reconciler's first pass and the first job
    aggregates.install(engine)  # and /stats's triggers, before the first task changes
    assert settings.redis_url, "main() checks REDIS_URL before starting the supervisor"
    connection = Redis.from_url(settings.redis_url, socket_timeout=REDIS_SOCKET_TIMEOUT_SECONDS)
    pool_name = args.name or settings.worker_name or uuid.uuid4().hex[:POOL_NAME_HEX_DIGITS]
    processes = args.processes or settings.pool_processes
    grace = settings.pool_grace_seconds if args.grace_seconds is None else args.grace_seconds
    interpreter = interpreter_options(settings.pool_python_optimize)
    log.info(
        "pool starting",
        worker=pool_name,
        processes=processes,
        queues=list(QUEUE_NAMES),
        metrics_port=args.metrics_port,
        metrics_dir=str(directories.own),
        interpreter_options=interpreter,
    )
    if settings.pool_python_optimize and not interpreter:
        log.warning(
            "pool processes start without -O: no optimized bytecode on disk (python -m compileall -o 2 writes it)",
            worker=pool_name,
        )

    stop_loops = threading.Event()  # set by the first signal: no more promotions or repairs
    stop_scheduler = threading.Event()  # set once the pool processes are gone: until then it holds
    scheduler = hold_scheduler(connection, pool_name)  # its locks, so none of them forks one
    threads = [
        start_thread("scheduler", lambda: run_scheduler(scheduler, stop_scheduler)),
        start_thread("aging", lambda: run_aging(connection, settings, stop_loops)),
    ]
    if settings.reconciler_in_worker and not args.no_reconciler:
        reconciler = build_reconciler(engine, connection, settings, f"{pool_name}-reconciler")
        threads.append(start_thread("reconciler", lambda: reconciler.run_forever(stop_loops)))

    def on_exit(slot: Slot, pid: int, returncode: int, stopping: bool) -> None:
        close_orphaned_attempts(engine, settings, events, slot.name, lost_attempt_error(slot, pid, returncode, stopping))
        if returncode != 0:  # a clean exit unregistered itself
            forget_worker(connection, slot.name)

    supervisor = Supervisor(
        pool_name,
        processes,
        lambda slot: pool_process_command(slot, args, interpreter),
        burst=args.burst,
        grace_seconds=grace,
        backoff_cap_seconds=settings.pool_restart_backoff_max_seconds,
        on_exit=on_exit,
        on_stop=stop_loops.set,
        env={**os.environ, MULTIPROC_DIR_ENV: str(directories.own)},
    )
    try:
        return supervisor.run()
    finally:
        stop_loops.set()
        stop_scheduler.set()
        for thread in threads:
            thread.join(timeout=THREAD_JOIN_SECONDS)
        engine.dispose()


# ----------------------------------------------------------------------------------------------
# The command line: python -m phase5_scaling.worker (or phase6_docker.worker)


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def non_negative_float(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return value


def parse_args(argv: list[str] | None, prog: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Run a supervised pool of RQ worker processes on the five priority queues "
        f"({', '.join(QUEUE_NAMES)}, highest first), with one reconciler, aging and one metrics endpoint. "
        "Needs REDIS_URL and DATABASE_URL.",
        epilog="SIGTERM or Ctrl-C: running tasks may finish for --grace-seconds, then the pool exits; "
        "a second signal stops at once. Tasks cut short are retried, never left running.",
    )
    parser.add_argument(
        "--processes", type=positive_int, default=None, help="worker processes in the pool (default: POOL_PROCESSES, 2)"
    )
    parser.add_argument(
        "--grace-seconds",
        type=non_negative_float,
        default=None,
        help="on SIGTERM, how long running tasks may take to finish before they are killed (default: POOL_GRACE_SECONDS, 30)",
    )
    parser.add_argument("--burst", action="store_true", help="exit once the queues are empty instead of waiting for more")
    parser.add_argument(
        "--metrics-port", type=int, default=None, help="serve the whole pool's Prometheus metrics on this port (default: none)"
    )
    parser.add_argument(
        "--name",
        default=None,
        help="pool name; its processes are NAME-1 … NAME-N in RQ, task.worker and logs (default: WORKER_NAME or random)",
    )
    parser.add_argument("--log-level", default="INFO", help="logging level (default: INFO)")
    parser.add_argument("--no-reconciler", action="store_true", help="do not run the reconciler in this pool")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)  # a pool process, started by the supervisor
    parser.add_argument("--parent", type=int, default=None, help=argparse.SUPPRESS)  # the supervisor's pid: exit with it
    return parser.parse_args(argv)


def main(argv: list[str] | None = None, prog: str = f"python -m {__package__}.pool") -> int:
    """The pool's command line; ``prog`` is the phase's entry point, shown by ``--help``."""
    args = parse_args(argv, prog)
    settings = worker_settings()
    if not settings.redis_url:
        print("REDIS_URL is not set. Start one (python -m shared.redis_server) or use `make run PHASE=5`.", file=sys.stderr)
        return 2
    configure_logging(args.log_level, settings.log_format)
    if args.child:
        return run_pool_process(args, settings)
    return run_supervisor(args, settings)


if __name__ == "__main__":
    sys.exit(main())
