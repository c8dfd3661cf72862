"""Engines for the task store: SQLite by default, PostgreSQL when ``DATABASE_URL`` says so.

Two facts shape this module:

* Several processes (an API and N workers) write to one SQLite file. WAL mode lets readers
  run beside the one writer, and a busy timeout makes a writer wait for the lock instead of
  failing at once with "database is locked". The writers of these engines also take turns
  (:mod:`writer_turns`), so one that waits starts microseconds after the writer ahead
  of it commits, not after the milliseconds SQLite's busy handler sleeps.
* RQ forks a child process (the "work horse") for every job. A connection pool copied across
  ``fork()`` shares sockets and file handles with the parent, and two processes talking over
  one connection corrupt each other. :func:`engine_for_this_process` hands every process its
  own engine and drops (without closing) what it inherited.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import Engine, make_url
from sqlmodel import Session, SQLModel, create_engine

from shared import models  # noqa: F401  (registers the table on SQLModel.metadata)

from .writer_turns import TurnTakingConnection


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def normalize_url(url: str) -> str:
    """Accept the ``postgresql://`` URLs people paste and use the psycopg 3 driver for them."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def create_db_engine(
    url: str, *, busy_timeout_ms: int = 5000, echo: bool = False, writer_turns: bool = True, sqlite_cache_kib: int | None = None
) -> Engine:
    """Build an engine tuned for the store behind ``url``.

    SQLite: WAL journal, a busy timeout and ``synchronous=NORMAL`` (durable at each checkpoint,
    the usual pairing with WAL); its writers take turns (:mod:`writer_turns`, chapter 5)
    unless ``writer_turns`` is false. PostgreSQL: ``pool_pre_ping`` so a connection the server closed while idle is
    replaced instead of failing the next request; its writers wait for row locks, not a
    database-wide one, so they take no turns.

    ``sqlite_cache_kib`` caps each SQLite connection's page cache (SQLite's default is 2000 KiB,
    filled as the file grows); ``None`` keeps the default. A process that reads a few rows by
    key per unit of work (a pool process) needs little of it: the pages it misses come from the
    operating system's cache, shared by every process.
    """
    url = normalize_url(url)
    if not is_sqlite(url):
        return create_engine(url, echo=echo, pool_pre_ping=True)

    engine = create_engine(
        url,
        echo=echo,
        # FastAPI runs sync endpoints in a thread pool: a connection may be used by another
        # thread than the one that opened it (one at a time, which is what the pool ensures).
        connect_args={
            "check_same_thread": False,
            "timeout": busy_timeout_ms / 1000,
            "factory": TurnTakingConnection if writer_turns else sqlite3.Connection,
        },
    )
    database_path = make_url(url).database or ""
    # An in-memory database (or a URI filename, rare here) has no file to put the turn beside.
    takes_turns = writer_turns and database_path not in ("", ":memory:") and not database_path.startswith("file:")

    @event.listens_for(engine, "connect")
    def _configure_sqlite(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        if sqlite_cache_kib is not None:
            cursor.execute(f"PRAGMA cache_size=-{int(sqlite_cache_kib)}")  # negative: KiB, not pages
        cursor.close()
        if takes_turns and isinstance(dbapi_connection, TurnTakingConnection):
            dbapi_connection.use_turn_file(database_path, busy_timeout_ms / 1000)

    return engine


def init_db(engine: Engine) -> None:
    """Create the table and its indexes if they are missing, safely from several processes.

    An API and its workers start together and each calls this. Two ``CREATE TABLE`` racing
    would fail one of them, so the creation runs under a lock: PostgreSQL's advisory lock, or
    SQLite's write lock taken up front with ``BEGIN IMMEDIATE``.
    """
    with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            with connection.begin():
                connection.execute(text("SELECT pg_advisory_xact_lock(7261001)"))
                SQLModel.metadata.create_all(connection)
        else:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
            try:
                SQLModel.metadata.create_all(connection)
            finally:
                connection.exec_driver_sql("COMMIT")


_engines: dict[str, tuple[int, Engine]] = {}


def engine_for_this_process(url: str, *, busy_timeout_ms: int = 5000, sqlite_cache_kib: int | None = None) -> Engine:
    """The engine of the current process for ``url``, safe to use after ``fork()``.

    The first call creates the engine. In a child forked after that (an RQ work horse), the
    engine is found under the parent's pid: ``dispose(close=False)`` gives the child a new,
    empty pool and forgets the inherited connections *without closing them*, since closing
    would close them for the parent too. What the child keeps is everything that is safe to
    share: the dialect, already initialised, and the cache of compiled SQL statements, so
    a work horse does not compile its queries again for every job.
    """
    pid = os.getpid()
    owner_pid, engine = _engines.get(url, (None, None))
    if engine is not None and owner_pid != pid:
        engine.dispose(close=False)
    if engine is None:
        engine = create_db_engine(url, busy_timeout_ms=busy_timeout_ms, sqlite_cache_kib=sqlite_cache_kib)
    _engines[url] = (pid, engine)
    return engine


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session for a unit of work outside a request (workers, scripts, tests)."""
    with Session(engine, expire_on_commit=False) as session:
        yield session
