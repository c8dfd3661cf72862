"""``python -m phase6_docker.worker --processes N``: phase 5's supervised pool, started patiently.

The pool is phase 5's (:mod:`scaling.pool`: a supervisor, N processes, the reconciler,
aging, one metrics port, a graceful drain on SIGTERM). In a container it starts beside
PostgreSQL and Redis, so it first waits for both (:mod:`phase6_docker.startup`) instead of
crashing into a restart loop. Compose's ``stop_grace_period`` is longer than the pool's
``--grace-seconds``, so ``docker compose stop`` lets running tasks finish.
"""

from __future__ import annotations

import sys

from .monitoring.logs import configure_logging
from .scaling import pool
from .scaling.settings import load_settings
from .startup import ServiceUnavailable, wait_for_services

PROG = "python -m phase6_docker.worker"


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    if not {"-h", "--help"} & set(arguments):
        settings = load_settings()
        configure_logging("INFO", settings.log_format)
        try:
            wait_for_services(settings.database_url, settings.redis_url)
        except ServiceUnavailable as exc:
            print(f"{PROG}: {exc}", file=sys.stderr)
            return 1
    return pool.main(arguments, prog=PROG)


if __name__ == "__main__":
    sys.exit(main())
