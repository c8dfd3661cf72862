"""``python -m phase4_monitoring.worker --metrics-port P``: phase 3's worker, observable.

Compared with phase 3, the worker

* serves its own ``/metrics`` on ``--metrics-port`` (prometheus-client's HTTP server, a thread
  that takes no lock a work horse could need: no logging, no database, no Redis);
* keeps its counts in a metrics directory of its own, which its work horses and its reconciler
  write into, and which an exporter adopts if this worker dies (:mod:`monitoring.metrics`);
* logs structured JSON lines, RQ's included, and binds the task's context (``task_id``,
  ``task_type``, ``request_id``, ``worker``) from the moment it takes a job.
"""

from __future__ import annotations

import argparse
import os
import sys
import uuid

from redis import Redis
from rq import Queue
from rq.job import Job
from rq.serializers import JSONSerializer
from sqlalchemy.engine import Engine

from .db import engine_for_this_process
from .jobs import (
    QUEUE_NAME,
    make_queue,
    worker_events,
    worker_settings,
)
from .monitoring import aggregates
from .monitoring.logs import configure_logging, get_logger, job_log_context, replace_rq_dequeue_line
from .monitoring.metrics import MetricsDirectories, serve_in_thread, use_directory, worker_identity
from .monitoring.settings import MonitoringSettings
from .recovery.events import TaskEvents
from .recovery.worker import (
    TaskWorker,
    crashed_attempt_handler,
    run_worker_loop,
    start_reconciler,
    warm_engine,
)

log = get_logger("phase4_monitoring.worker")


class MonitoredWorker(TaskWorker):
    """Phase 3's worker, with the task's log context bound while it runs a job."""

    def execute_job(self, job: Job, queue: Queue) -> None:
        # Bound in the parent before the fork, so the horse inherits it, and the crash handler's
        # lines (which run here, after the horse died) carry it too.
        with job_log_context(job, self.name, queue.name):
            super().execute_job(job, queue)


def build_worker(
    connection: Redis, engine: Engine, settings: MonitoringSettings, name: str, events: TaskEvents
) -> MonitoredWorker:
    worker = MonitoredWorker(
        [make_queue(connection)],
        connection=connection,
        serializer=JSONSerializer,
        name=name,
        worker_ttl=settings.rq_worker_ttl_seconds,
        maintenance_interval=settings.rq_maintenance_interval_seconds,
        job_monitoring_interval=settings.rq_job_monitoring_interval_seconds,
        work_horse_killed_handler=crashed_attempt_handler(engine, events),
    )
    worker.log_job_description = False  # its dequeue line is then the one replace_rq_dequeue_line() drops
    worker.max_connection_wait_time = settings.redis_reconnect_max_seconds  # RQ waits up to 60 s
    return worker


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m phase4_monitoring.worker",
        description=f"Run an RQ worker (with scheduler, reconciler and metrics) for the '{QUEUE_NAME}' queue. "
        "Needs REDIS_URL and DATABASE_URL.",
    )
    parser.add_argument("--burst", action="store_true", help="exit once the queue is empty instead of waiting for more")
    parser.add_argument(
        "--name", default=None, help="worker name shown in RQ, in task.worker and in logs (default: WORKER_NAME or random)"
    )
    parser.add_argument("--log-level", default="INFO", help="logging level (default: INFO)")
    parser.add_argument("--no-reconciler", action="store_true", help="do not run the reconciler loop in this worker")
    parser.add_argument(
        "--metrics-port", type=int, default=None, help="serve Prometheus metrics on this port (default: no endpoint)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = worker_settings()
    if not settings.redis_url:
        print("REDIS_URL is not set. Start one (python -m shared.redis_server) or use `make run PHASE=4`.", file=sys.stderr)
        return 2
    configure_logging(args.log_level, settings.log_format)
    replace_rq_dequeue_line()

    # The metrics directory first, the metric objects second: values created before
    # use_directory() would live in this process's memory and die with it.
    directories = MetricsDirectories.claim(settings.metrics_root, "worker")
    use_directory(directories.own or settings.metrics_root, worker_identity(os.getpid()))
    events = worker_events()
    events.metrics.initialize_series()
    if args.metrics_port is not None:
        serve_in_thread(directories, settings.metrics_host, args.metrics_port)

    engine = engine_for_this_process(settings.database_url, busy_timeout_ms=settings.db_busy_timeout_ms)
    warm_engine(engine)
    aggregates.install(engine)  # /stats's triggers, before this worker changes a task
    name = args.name or settings.worker_name or uuid.uuid4().hex
    log.info("worker starting", worker=name, metrics_port=args.metrics_port, metrics_dir=str(directories.own))
    reconciler = None
    if settings.reconciler_in_worker and not args.no_reconciler:
        # It inherits PROMETHEUS_MULTIPROC_DIR: its repairs are counted in this worker's directory.
        reconciler = start_reconciler("phase4_monitoring.reconciler", name, args.log_level)

    connection = Redis.from_url(settings.redis_url)
    try:
        return run_worker_loop(
            lambda: build_worker(connection, engine, settings, name, events),
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


if __name__ == "__main__":
    sys.exit(main())
