"""``python -m phase3_retry.worker``: an RQ worker that retries, recovers and reconciles.

Compared with phase 2, the worker

* runs RQ's scheduler (``with_scheduler=True``): a retry waiting out its backoff sits in RQ's
  ScheduledJobRegistry, and only a scheduler moves it back to the queue;
* repairs the task row when its work horse is killed mid-attempt (the OOM killer, a
  ``kill -9``): RQ retries the *job* but never tells the task, which would stay ``running``;
* runs the reconciler (:mod:`phase3_retry.reconciler`) as a child process, so every worker
  also repairs what crashed workers and a wiped Redis left behind;
* shortens RQ's maintenance and monitoring intervals (600 s and 30 s by default), and keeps
  reconnecting when Redis goes away instead of exiting.

Importing :mod:`phase3_retry.jobs` at the top loads the task catalog, SQLModel and SQLAlchemy
once, in the parent. RQ forks a work horse per job, and the child inherits those modules
already imported, its settings already read and its SQL already compiled, so a job pays for a
``fork()``, not for imports and warm-up.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from resource import struct_rusage
from types import FrameType
from typing import Any

from redis import Redis
from redis.exceptions import RedisError
from rq import Worker
from rq.job import Job
from rq.serializers import JSONSerializer
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from phase3_retry.jobs import QUEUE_NAME, make_queue, worker_settings
from phase3_retry.settings import Phase3Settings
from shared import transitions
from shared.db import engine_for_this_process, init_db
from shared.execution import compile_job_statements
from shared.models import Task, TaskStatus

log = logging.getLogger("phase3_retry.worker")


class TaskWorker(Worker):
    """RQ's forking worker, plus a public record of whether it was asked to stop.

    RQ's loop also ends when it loses Redis; :func:`main` then starts a new loop, but must not
    when the loop ended because of SIGTERM or Ctrl-C.
    """

    stop_requested = False

    def request_stop(self, signum: int, frame: FrameType | None) -> None:
        self.stop_requested = True
        super().request_stop(signum, frame)


def crashed_attempt_handler(engine: Engine) -> Any:
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
                    transitions.mark_retrying(session, task.id, error)
                else:
                    transitions.mark_failed(session, task.id, error, only_from=[TaskStatus.RUNNING])
        except SQLAlchemyError:
            # An exception here would end RQ's work loop. The reconciler repairs the task later.
            log.exception("could not repair task %s after its work horse died", job.id)

    return repair


def build_worker(connection: Redis, engine: Engine, settings: Phase3Settings, name: str | None) -> TaskWorker:
    worker = TaskWorker(
        [make_queue(connection)],
        connection=connection,
        serializer=JSONSerializer,
        name=name,
        maintenance_interval=settings.rq_maintenance_interval_seconds,
        job_monitoring_interval=settings.rq_job_monitoring_interval_seconds,
        work_horse_killed_handler=crashed_attempt_handler(engine),
    )
    worker.max_connection_wait_time = settings.redis_reconnect_max_seconds  # RQ waits up to 60 s
    return worker


def start_reconciler(name: str, log_level: str) -> subprocess.Popen[bytes]:
    """Run the reconciler beside the worker, as a child process that exits with the worker.

    A process, not a thread. RQ forks a work horse for every job, and ``fork()`` copies every
    lock in the state it is in, but only the thread that forked. A reconciler thread holding a
    lock at that instant (SQLAlchemy's mapper-configuration mutex, for one) hands the horse a
    lock that nobody will ever release, and the horse hangs on its first query. A child
    process shares no locks; it is in the worker's process group, so a signal to the group
    (Ctrl-C, ``make run`` stopping, a crash test) reaches it too.
    """
    command = [sys.executable, "-m", "phase3_retry.reconciler", "--name", name, "--log-level", log_level, "--parent", str(os.getpid())]
    return subprocess.Popen(command)

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m phase3_retry.worker",
        description=f"Run an RQ worker (with scheduler and reconciler) for the '{QUEUE_NAME}' queue. Needs REDIS_URL and DATABASE_URL.",
    )
    parser.add_argument("--burst", action="store_true", help="exit once the queue is empty instead of waiting for more")
    parser.add_argument("--name", default=None, help="worker name shown in RQ and in task.worker (default: WORKER_NAME or RQ's)")
    parser.add_argument("--log-level", default="INFO", help="logging level (default: INFO)")
    parser.add_argument("--no-reconciler", action="store_true", help="do not run the reconciler loop in this worker")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = worker_settings()
    if not settings.redis_url:
        print("REDIS_URL is not set. Start one (python -m shared.redis_server) or use `make run PHASE=3`.", file=sys.stderr)
        return 2
    configure_logging(args.log_level)

    # Create the table if the worker starts before the API, and compile the job's SQL once
    # here, so every forked work horse inherits it compiled. Then close the connections: the
    # parent keeps none that a work horse could inherit, only the warm engine (which the crash
    # handler uses too, between two jobs).
    engine = engine_for_this_process(settings.database_url, busy_timeout_ms=settings.db_busy_timeout_ms)
    init_db(engine)
    compile_job_statements(engine)
    engine.dispose()
    # Named here, not by RQ, so the reconciler's log lines carry the same name.
    name = args.name or settings.worker_name or uuid.uuid4().hex
    reconciler = None
    if settings.reconciler_in_worker and not args.no_reconciler:
        reconciler = start_reconciler(name, args.log_level)

    connection = Redis.from_url(settings.redis_url)
    try:
        while True:
            worker: TaskWorker | None = None
            try:
                worker = build_worker(connection, engine, settings, name)  # talks to Redis already
                worker.work(burst=args.burst, logging_level=args.log_level, with_scheduler=True)
            except RedisError as exc:
                log.warning("worker loop stopped: %s: %s", type(exc).__name__, exc)
            except ValueError as exc:  # RQ: "There exists an active worker named …"
                print(f"{exc}: a worker killed with this name stays registered for a few minutes; use another --name", file=sys.stderr)
                return 1
            if args.burst or (worker is not None and worker.stop_requested):
                return 0
            # RQ ends its loop on Redis errors (and on any error it does not expect). Redis is the
            # thing that comes back: wait, mark the old loop dead, so the new one may take its name.
            signal.signal(signal.SIGTERM, exit_on_signal)  # RQ's handlers still point at the old loop
            signal.signal(signal.SIGINT, exit_on_signal)
            log.warning("worker %s: RQ's loop ended unexpectedly; starting a new one", name)
            time.sleep(settings.redis_reconnect_max_seconds)
            if worker is not None:
                forget_registration(worker)
    finally:
        if reconciler is not None:
            reconciler.terminate()
            reconciler.wait(timeout=10)
        engine.dispose()


def exit_on_signal(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def configure_logging(level: str) -> None:
    """Show this phase's own log lines (RQ configures its loggers itself, in ``work()``)."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s", "%H:%M:%S"))
    package = logging.getLogger("phase3_retry")
    package.addHandler(handler)
    package.setLevel(level.upper())


def forget_registration(worker: Worker) -> None:
    """Mark the old loop's worker dead in Redis, so the new loop may register the same name."""
    try:
        worker.register_death()
    except RedisError:
        pass  # Redis still down: the next loop fails to start, and we come back here


if __name__ == "__main__":
    sys.exit(main())
