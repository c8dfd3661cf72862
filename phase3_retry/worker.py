"""``python -m phase3_retry.worker``: an RQ worker that retries, recovers and reconciles.

Compared with phase 2, the worker

* runs RQ's scheduler (``with_scheduler=True``): a retry waiting out its backoff sits in RQ's
  ScheduledJobRegistry, and only a scheduler moves it back to the queue;
* repairs the task row when its work horse is killed mid-attempt
  (:func:`recovery.worker.crashed_attempt_handler`);
* runs the reconciler (:mod:`phase3_retry.reconciler`) as a child process, so every worker
  also repairs what crashed workers and a wiped Redis left behind;
* shortens RQ's maintenance and monitoring intervals (600 s and 30 s by default), and keeps
  reconnecting when Redis goes away instead of exiting.

The machinery is in :mod:`recovery.worker`, kept unchanged by phases 4 to 6; this module
builds phase 3's worker from it.

Importing :mod:`phase3_retry.jobs` at the top loads the task catalog, SQLModel and SQLAlchemy
once, in the parent. RQ forks a work horse per job, and the child inherits those modules
already imported, its settings already read and its SQL already compiled, so a job pays for a
``fork()``, not for imports and warm-up.
"""

from __future__ import annotations

import argparse
import logging
import sys
import uuid

from redis import Redis
from rq.serializers import JSONSerializer
from sqlalchemy.engine import Engine

from .db import engine_for_this_process
from .jobs import QUEUE_NAME, make_queue, worker_settings
from .recovery.settings import RecoverySettings
from .recovery.worker import TaskWorker, crashed_attempt_handler, run_worker_loop, start_reconciler, warm_engine


def build_worker(connection: Redis, engine: Engine, settings: RecoverySettings, name: str | None) -> TaskWorker:
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


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m phase3_retry.worker",
        description=f"Run an RQ worker (with scheduler and reconciler) for the '{QUEUE_NAME}' queue. "
        "Needs REDIS_URL and DATABASE_URL.",
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

    engine = engine_for_this_process(settings.database_url, busy_timeout_ms=settings.db_busy_timeout_ms)
    warm_engine(engine)
    # Named here, not by RQ, so the reconciler's log lines carry the same name.
    name = args.name or settings.worker_name or uuid.uuid4().hex
    reconciler = None
    if settings.reconciler_in_worker and not args.no_reconciler:
        reconciler = start_reconciler("phase3_retry.reconciler", name, args.log_level)

    connection = Redis.from_url(settings.redis_url)
    try:
        return run_worker_loop(
            lambda: build_worker(connection, engine, settings, name),
            name=name,
            burst=args.burst,
            log_level=args.log_level,
            reconnect_seconds=settings.redis_reconnect_max_seconds,
        )
    finally:
        if reconciler is not None:
            reconciler.terminate()
            reconciler.wait(timeout=10)
        engine.dispose()


def configure_logging(level: str) -> None:
    """Show this phase's own log lines, and the recovery machinery's (RQ configures its loggers itself, in ``work()``)."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s", "%H:%M:%S"))
    for package_name in ("phase3_retry",):  # its recovery/ modules log under phase3_retry.recovery
        package = logging.getLogger(package_name)
        package.addHandler(handler)
        package.setLevel(level.upper())


if __name__ == "__main__":
    sys.exit(main())
