"""The parts of a phase 3 worker that every later phase keeps: crash repair, reconciler, reconnects.

Compared with phase 2, a worker

* repairs the task row when its work horse is killed mid-attempt (the OOM killer, a
  ``kill -9``): RQ retries the *job* but never tells the task, which would stay ``running``;
* runs the reconciler (:mod:`recovery.reconciler`) as a child process, so every worker
  also repairs what crashed workers and a wiped Redis left behind;
* keeps reconnecting when Redis goes away instead of exiting, and never forgets a stop request
  while it does (:data:`STOP_REQUESTED`).

A phase's ``worker.py`` builds its RQ worker (its queue, its settings) and hands it to
:func:`run_worker_loop`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from resource import struct_rusage
from types import FrameType
from typing import Any, Protocol

from redis import Redis
from redis.exceptions import RedisError
from rq import Worker
from rq.exceptions import StopRequested
from rq.job import Job
from rq.utils import as_text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from shared.models import Task, TaskStatus

from .. import transitions
from ..db import init_db
from ..execution import compile_job_statements
from ..worker_pubsub import PromptPubSubWorker
from .events import NO_EVENTS, TaskEvents

log = logging.getLogger(__name__)

#: Set by this process's first stop request (SIGTERM, Ctrl-C). It outlives every RQ worker object
#: the reconnect loop builds: a stop that arrives while Redis is away, when RQ's handler may be
#: lost inside a reconnect, still ends the process at the next chance (the next heartbeat, the
#: next turn of :func:`run_worker_loop`).
STOP_REQUESTED = threading.Event()


def request_process_stop(grace_seconds: float | None = None) -> None:
    """Remember that this process must stop; with ``grace_seconds``, end it after that long whatever it is doing.

    The bound is for a process that nobody else will stop: a pool process whose supervisor is
    dead cannot count on a second signal or a grace kill, and a Redis or a database that does
    not answer must not keep it alive.
    """
    if STOP_REQUESTED.is_set():
        return
    STOP_REQUESTED.set()
    if grace_seconds is not None:
        threading.Thread(target=_exit_after, args=(grace_seconds,), name="stop-deadline", daemon=True).start()


def _exit_after(grace_seconds: float) -> None:
    time.sleep(grace_seconds)
    log.warning("still running %.1f s after the stop request: exiting now", grace_seconds)
    logging.shutdown()
    os._exit(0)  # not sys.exit: that only ends this thread


#: RQ's ``work_horse_killed_handler`` signature: the job, the horse's pid, its wait status, its rusage.
HorseKilledHandler = Callable[[Job, int, int, struct_rusage], None]


class TaskWorker(PromptPubSubWorker, Worker):
    """RQ's forking worker, plus a public record of whether it was asked to stop (and a command
    thread that lets it exit at once, :mod:`worker_pubsub`).

    RQ's loop also ends when it loses Redis; :func:`run_worker_loop` then starts a new loop, but
    must not when the loop ended because of SIGTERM or Ctrl-C.
    """

    stop_requested = False

    def request_stop(self, signum: int, frame: FrameType | None) -> None:
        self.stop_requested = True
        request_process_stop()
        super().request_stop(signum, frame)  # type: ignore[no-untyped-call]  # unannotated in RQ

    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        # RQ's loop beats before every dequeue: a stop its own handler lost (in a reconnect)
        # ends an idle worker here.
        if STOP_REQUESTED.is_set() and not self.stop_requested and self.get_state() != "busy":
            self.stop_requested = True
            raise StopRequested
        super().heartbeat(timeout, pipeline)


def crashed_attempt_handler(engine: Engine, events: TaskEvents = NO_EVENTS) -> HorseKilledHandler:
    """The ``work_horse_killed_handler``: repair the task whose work horse died mid-attempt.

    RQ calls it in the worker (the parent) when the horse exited without finishing the job,
    just before it retries or fails the job itself. The row says ``running`` and nobody will
    ever finish that attempt: move it on now, the way RQ is about to move the job, so the
    retried job can claim it (a claim only takes ``pending`` or ``retrying`` tasks).
    """

    def repair(job: Job, retpid: int, ret_val: int, rusage: struct_rusage) -> None:
        cause = f"signal {os.WTERMSIG(ret_val)}" if os.WIFSIGNALED(ret_val) else f"exit status {ret_val >> 8}"
        try:
            with Session(engine, expire_on_commit=False) as session:
                task = session.get(Task, uuid.UUID(job.id))
                if task is None:
                    return
                error = f"WorkerCrash: work horse {retpid} died ({cause}) during attempt {task.attempts}"
                if job.should_retry:  # exactly RQ's own test, so the row and the job agree
                    if transitions.mark_retrying(session, task.id, error):
                        events.attempt_lost(task, TaskStatus.RETRYING, "worker")
                elif transitions.mark_failed(session, task.id, error, only_from=[TaskStatus.RUNNING]):
                    events.attempt_lost(task, TaskStatus.FAILED, "worker")
        except SQLAlchemyError:
            # An exception here would end RQ's work loop. The reconciler repairs the task later.
            log.exception("could not repair task %s after its work horse died", job.id)

    return repair


def warm_engine(engine: Engine) -> None:
    """Create the table if the worker starts before the API, and compile the job's SQL once.

    Every forked work horse then inherits the statements compiled. The connections are closed
    after: the parent keeps none that a work horse could inherit, only the warm engine (which
    the crash handler uses too, between two jobs).
    """
    init_db(engine)
    compile_job_statements(engine)
    engine.dispose()


def start_reconciler(module: str, name: str, log_level: str) -> subprocess.Popen[bytes]:
    """Run ``python -m <module>`` (a phase's reconciler) beside the worker, as a child that exits with it.

    A process, not a thread. RQ forks a work horse for every job, and ``fork()`` copies every
    lock in the state it is in, but only the thread that forked. A reconciler thread holding a
    lock at that instant (SQLAlchemy's mapper-configuration mutex, for one) hands the horse a
    lock that nobody will ever release, and the horse hangs on its first query. A child
    process shares no locks; it is in the worker's process group, so a signal to the group
    (Ctrl-C, ``make run`` stopping, a crash test) reaches it too.
    """
    command = [sys.executable, "-m", module, "--name", name, "--log-level", log_level, "--parent", str(os.getpid())]
    return subprocess.Popen(command)


class StoppableWorker(Protocol):
    """What :func:`run_worker_loop` needs of an RQ worker: forking (phases 3, 4) or not (phase 5)."""

    stop_requested: bool
    connection: Redis

    @property
    def key(self) -> str: ...

    def work(self, burst: bool = ..., logging_level: str | None = ..., *args: Any, **kwargs: Any) -> bool: ...

    def register_death(self) -> None: ...


def run_worker_loop(
    build_worker: Callable[[], StoppableWorker],
    *,
    name: str,
    burst: bool,
    log_level: str,
    reconnect_seconds: float,
    with_scheduler: bool = True,
) -> int:
    """Run RQ's work loop, and start it again whenever it ends for any reason but a stop request.

    Returns the process exit code: 0 after a stop request or a burst, 1 when the name is taken.
    """
    while True:
        worker: StoppableWorker | None = None
        try:
            worker = build_worker()  # talks to Redis already
            worker.work(burst=burst, logging_level=log_level, with_scheduler=with_scheduler)
        except RedisError as exc:
            log.warning("worker loop stopped: %s: %s", type(exc).__name__, exc)
        except ValueError as exc:  # RQ: "There exists an active worker named …"
            if worker is not None and registered_by_this_process(worker):
                # Our own registration from before an outage (a partition, a Redis restart with
                # its data): the loop that made it is gone, so it is safe to replace it.
                log.warning("worker %s: replacing its own registration from before the outage", name)
                forget_registration(worker)
                if STOP_REQUESTED.wait(reconnect_seconds):
                    return 0
                continue
            print(
                f"{exc}: a worker killed with this name stays registered for a few minutes; use another --name", file=sys.stderr
            )
            return 1
        if burst or STOP_REQUESTED.is_set() or (worker is not None and worker.stop_requested):
            return 0
        # RQ ends its loop on Redis errors (and on any error it does not expect). Redis is the
        # thing that comes back: wait, mark the old loop dead, so the new one may take its name.
        signal.signal(signal.SIGTERM, exit_on_signal)  # RQ's handlers still point at the old loop
        signal.signal(signal.SIGINT, exit_on_signal)
        log.warning("worker %s: RQ's loop ended unexpectedly; starting a new one", name)
        if STOP_REQUESTED.wait(reconnect_seconds):  # a stop during the wait: do not start again
            return 0
        if worker is not None:
            forget_registration(worker)


def exit_on_signal(signum: int, frame: FrameType | None) -> None:
    request_process_stop()
    raise SystemExit(0)


def registered_by_this_process(worker: StoppableWorker) -> bool:
    """Whether the registration in Redis under this worker's name was made by this very process."""
    with contextlib.suppress(RedisError):
        pid, hostname = worker.connection.hmget(worker.key, ["pid", "hostname"])
        return pid is not None and int(pid) == os.getpid() and as_text(hostname or b"") == socket.gethostname()
    return False


def forget_registration(worker: StoppableWorker) -> None:
    """Mark the old loop's worker dead in Redis, so the new loop may register the same name."""
    # Redis still down: the next loop fails to start, and we come back here.
    with contextlib.suppress(RedisError):
        worker.register_death()
