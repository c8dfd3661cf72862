"""Wait for PostgreSQL and Redis at start, with backoff and a clear log line, instead of crashing.

``depends_on: condition: service_healthy`` orders a Compose start, but not a restart of the
database alone, a stack on an orchestrator without such ordering, or a managed database still
booting. A process that crashes on its first refused connection then restarts in a loop and
buries the cause in a stack trace. Each phase 6 process instead calls :func:`wait_for_services`
first: one log line per failed try (``waiting for postgresql …  attempt 3, next in 0.8 s``),
exponential backoff with jitter, a deadline, and a clear error if it passes.

``python -m phase6_docker.startup -- COMMAND …`` waits, then ``exec``s the command (it becomes
the same process, so signals still reach it): the schema step runs
``python -m phase6_docker.schema`` this way.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from collections.abc import Callable

import redis
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from .db import is_sqlite, normalize_url
from .monitoring.logs import configure_logging, get_logger
from .settings import load_settings

log = get_logger("phase6_docker.startup")

#: The first pause after a failed try; it doubles each time, up to STARTUP_BACKOFF_MAX_SECONDS.
FIRST_BACKOFF_SECONDS = 0.25
#: Each try gives up after this: a host that drops packets must not eat the whole deadline at once.
CONNECT_TIMEOUT_SECONDS = 3


class ServiceUnavailable(RuntimeError):
    """A service did not answer before the deadline."""


def backoff_delays(first: float, cap: float) -> Callable[[int], float]:
    """Attempt n (1, 2, …) → the pause before the next: doubling, capped, with "full jitter".

    Jitter spreads the retries of many processes (4 uvicorn processes, N workers) that all
    found the database down at the same instant, so they do not knock on it in step.
    """
    return lambda attempt: random.uniform(first / 2, min(cap, first * 2 ** (attempt - 1)))


def wait_until(name: str, check: Callable[[], None], *, timeout: float, backoff_cap: float) -> int:
    """Call ``check`` until it stops raising; return the attempts it took. Raise ServiceUnavailable at the deadline."""
    deadline = time.monotonic() + timeout
    delay = backoff_delays(FIRST_BACKOFF_SECONDS, backoff_cap)
    attempt = 0
    while True:
        attempt += 1
        try:
            check()
        except Exception as exc:  # noqa: BLE001 - any failure to connect means "not yet"
            reason = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
            pause = delay(attempt)
            if time.monotonic() + pause > deadline:
                message = f"{name} did not answer within {timeout:g} s ({attempt} attempts); last error: {reason}"
                raise ServiceUnavailable(message) from exc
            log.warning(f"waiting for {name}", attempt=attempt, next_try_seconds=round(pause, 2), error=reason)
            time.sleep(pause)
            continue
        if attempt > 1:
            log.info(f"{name} is up", attempts=attempt)
        return attempt


def check_database(url: str) -> Callable[[], None]:
    """``SELECT 1`` on a one-off connection (no pool: nothing half-open is kept between tries)."""
    url = normalize_url(url)
    connect_args = {} if is_sqlite(url) else {"connect_timeout": CONNECT_TIMEOUT_SECONDS}  # libpq waits for ever

    def check() -> None:
        engine = create_engine(url, connect_args=connect_args, poolclass=NullPool)
        try:
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        finally:
            engine.dispose()

    return check


def check_redis(url: str) -> Callable[[], None]:
    """``PING``, with the password the URL carries (a wrong one fails here, clearly, not later)."""

    def check() -> None:
        client = redis.Redis.from_url(url, socket_connect_timeout=CONNECT_TIMEOUT_SECONDS, socket_timeout=CONNECT_TIMEOUT_SECONDS)
        try:
            client.ping()
        finally:
            client.close()

    return check


def describe(url: str) -> str:
    """A URL fit for a log line: the password masked."""
    return make_url(url).render_as_string(hide_password=True) if "://" in url else url


def wait_for_services(database_url: str | None, redis_url: str | None) -> None:
    """Wait for the database and Redis named (either may be ``None``); raise ServiceUnavailable if one stays down."""
    settings = load_settings()
    if database_url:
        name = "postgresql" if make_url(database_url).get_backend_name() == "postgresql" else "database"
        wait_until(
            f"{name} at {describe(database_url)}",
            check_database(database_url),
            timeout=settings.startup_timeout_seconds,
            backoff_cap=settings.startup_backoff_max_seconds,
        )
    if redis_url:
        wait_until(
            f"redis at {describe(redis_url)}",
            check_redis(redis_url),
            timeout=settings.startup_timeout_seconds,
            backoff_cap=settings.startup_backoff_max_seconds,
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m phase6_docker.startup",
        description="Wait for DATABASE_URL and REDIS_URL to answer (with backoff, up to STARTUP_TIMEOUT_SECONDS), "
        "then run COMMAND in this process.",
    )
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- and the command to exec once both answer")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    configure_logging("INFO", os.environ.get("LOG_FORMAT", "auto"))  # type: ignore[arg-type]
    try:
        wait_for_services(os.environ.get("DATABASE_URL"), os.environ.get("REDIS_URL"))
    except ServiceUnavailable as exc:
        log.error("giving up", reason=str(exc))
        return 1
    if command:
        os.execvp(command[0], command)  # replaces this process: the command is PID 1 and gets the signals
    return 0


if __name__ == "__main__":
    sys.exit(main())
