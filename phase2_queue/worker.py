"""``python -m phase2_queue.worker``: an RQ worker for the phase 2 queue.

Importing :mod:`phase2_queue.jobs` at the top loads the task catalog, SQLModel and SQLAlchemy
once, in the parent. RQ forks a work horse per job, and the child inherits those modules
already imported, so a job pays for a ``fork()``, not for imports.
"""

from __future__ import annotations

import argparse
import sys

from redis import Redis
from rq import Worker
from rq.serializers import JSONSerializer

from phase2_queue.jobs import QUEUE_NAME, make_queue
from shared.db import create_db_engine, init_db
from shared.settings import load_settings


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
    settings = load_settings()
    if not settings.redis_url:
        print("REDIS_URL is not set. Start one (python -m shared.redis_server) or use `make run PHASE=2`.", file=sys.stderr)
        return 2

    # Create the table if the worker starts before the API; then let the engine go, so the
    # parent holds no connection that a forked work horse could inherit.
    engine = create_db_engine(settings.database_url, busy_timeout_ms=settings.db_busy_timeout_ms)
    init_db(engine)
    engine.dispose()

    connection = Redis.from_url(settings.redis_url)
    worker = Worker(
        [make_queue(connection)],
        connection=connection,
        serializer=JSONSerializer,
        name=args.name or settings.worker_name,
    )
    worker.work(burst=args.burst, logging_level=args.log_level)
    return 0


if __name__ == "__main__":
    sys.exit(main())
