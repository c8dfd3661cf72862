"""``python -m phase2_queue.worker``: an RQ worker for the phase 2 queue.

Importing :mod:`phase2_queue.jobs` at the top loads the task catalog, SQLModel and SQLAlchemy
once, in the parent. RQ forks a work horse per job, and the child inherits those modules
already imported, its settings already read and its SQL already compiled, so a job pays for a
``fork()``, not for imports and warm-up.
"""

from __future__ import annotations

import argparse
import sys

from redis import Redis
from rq import Worker
from rq.serializers import JSONSerializer

from .db import engine_for_this_process, init_db
from .execution import compile_job_statements
from .jobs import QUEUE_NAME, make_queue, worker_settings
from .worker_pubsub import PromptPubSubWorker


class QueueWorker(PromptPubSubWorker, Worker):
    """RQ's forking worker, whose command thread lets it exit at once (:mod:`worker_pubsub`)."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m phase2_queue.worker",
        description=f"Run an RQ worker that processes the '{QUEUE_NAME}' queue. Needs REDIS_URL and DATABASE_URL.",
    )
    parser.add_argument("--burst", action="store_true", help="exit once the queue is empty instead of waiting for more")
    parser.add_argument("--name", default=None, help="worker name shown in RQ and in task.worker (default: WORKER_NAME or RQ's)")
    parser.add_argument("--log-level", default="INFO", help="RQ's logging level (default: INFO)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = worker_settings()
    if not settings.redis_url:
        print("REDIS_URL is not set. Start one (python -m shared.redis_server) or use `make run PHASE=2`.", file=sys.stderr)
        return 2

    # Create the table if the worker starts before the API, and compile the job's SQL once
    # here, so every forked work horse inherits it compiled. Then close the connections: the
    # parent keeps none that a work horse could inherit, only the warm engine.
    engine = engine_for_this_process(settings.database_url, busy_timeout_ms=settings.db_busy_timeout_ms)
    init_db(engine)
    compile_job_statements(engine)
    engine.dispose()

    connection = Redis.from_url(settings.redis_url)
    worker = QueueWorker(
        [make_queue(connection)],
        connection=connection,
        serializer=JSONSerializer,
        name=args.name or settings.worker_name,
    )
    worker.work(burst=args.burst, logging_level=args.log_level)
    return 0


if __name__ == "__main__":
    sys.exit(main())
