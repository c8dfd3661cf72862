"""SQLite writers take turns through a file lock instead of sleeping in SQLite's busy handler.

SQLite lets one connection write at a time. A writer that finds the lock taken calls the busy
handler that ``busy_timeout`` installs, and that handler *sleeps*: 1 ms, then 2, 5, 10 ms and
more, whatever the writer ahead of it does. A pool process holds the lock for well under a
millisecond per statement (one row's ``UPDATE`` and its ``COMMIT``), so a writer that collides
sleeps longer than it had to wait. With two pool processes writing two rows per task, that was
about 13 % of each process's time spent in ``usleep`` inside SQLite (``py-spy --native``), and
the second process added only a third to the drain rate (docs/05-scaling.md has the figures).

Here, each SQLite connection of the engine, before its first write of a transaction, takes its
*turn*: an exclusive ``flock`` on a file beside the database (``tasks.db-writer-turn``). A turn
that is taken is asked for again after 20 µs, then 40, 80 … up to 1 ms: a writer that waits
starts a few tens of microseconds after the one ahead of it commits, not milliseconds. The turn
is given back when the transaction ends (commit or rollback).

What it does not change is what SQLite guarantees. SQLite's own lock still decides who writes;
the turn only makes writers of this engine queue for it politely. A writer that does not take
turns (the ``sqlite3`` shell, another program) is still waited for by the busy timeout, and a
turn not granted within the busy timeout is not waited for any longer: the write goes to SQLite,
which then waits or answers "database is locked" exactly as it would without turns. Two
connections of one process hold separate turns (``flock`` locks belong to an open file, and
each connection opens its own), and the kernel gives a turn back when its process dies.

A blocking ``flock`` (sleep in the kernel until the holder unlocks) was measured too: it took
back most of the gain (two pool processes 1.45–1.48× one, against 1.75–1.76× asking again, in
runs of the same hour). Asking again costs a system call per try, and its first sleeps are
tens of microseconds, not SQLite's milliseconds.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import time
from collections.abc import Iterable
from typing import Any, Self

#: What a statement starts with when it writes, or takes the write lock up front. Reads (SELECT,
#: PRAGMA) never take a turn: WAL lets them run beside the writer.
WRITE_STATEMENT_PREFIXES: tuple[str, ...] = (
    "INSERT",
    "UPDATE",
    "DELETE",
    "REPLACE",
    "BEGIN IMMEDIATE",
    "BEGIN EXCLUSIVE",
    "CREATE",
    "DROP",
    "ALTER",
)
#: The longest prefix above: only this much of a statement is looked at.
_PREFIX_CHARS = max(len(prefix) for prefix in WRITE_STATEMENT_PREFIXES)
#: The first wait before asking for a taken turn again; it doubles up to the cap.
FIRST_PAUSE_SECONDS = 20e-6
MAX_PAUSE_SECONDS = 1e-3
#: The file beside the database that writers lock: ``tasks.db`` → ``tasks.db-writer-turn``.
TURN_FILE_SUFFIX = "-writer-turn"


def is_write(statement: str) -> bool:
    """Whether ``statement`` writes (or locks for writing), judged by its first keyword(s)."""
    return statement.lstrip()[:_PREFIX_CHARS].upper().startswith(WRITE_STATEMENT_PREFIXES)


class TurnTakingCursor(sqlite3.Cursor):
    """A cursor whose connection takes its turn before a write, and gives it back after autocommit."""

    connection: TurnTakingConnection

    # Parameters are passed on untouched: ``Any`` accepts whatever sqlite3's own cursor accepts.
    def execute(self, sql: str, parameters: Any = (), /) -> Self:
        self.connection.take_turn_for(sql)
        try:
            return super().execute(sql, parameters)
        finally:
            self.connection.give_turn_back_unless_in_transaction()

    def executemany(self, sql: str, seq_of_parameters: Iterable[Any], /) -> Self:
        self.connection.take_turn_for(sql)
        try:
            return super().executemany(sql, seq_of_parameters)
        finally:
            self.connection.give_turn_back_unless_in_transaction()


class TurnTakingConnection(sqlite3.Connection):
    """A ``sqlite3`` connection that takes its turn before each write transaction (``factory=`` of connect).

    :meth:`use_turn_file` switches turns on, with the database's path, once the connection is
    open; a connection without one (``:memory:``, or a database whose directory is read-only)
    behaves exactly like ``sqlite3.Connection``.
    """

    turn_fd: int | None = None
    has_turn: bool = False
    #: How long to ask for a taken turn before writing without it: the engine's busy timeout.
    turn_wait_seconds: float = 5.0

    def use_turn_file(self, database_path: str, wait_seconds: float) -> None:
        """Take turns with every other connection writing to ``database_path``."""
        try:
            self.turn_fd = os.open(database_path + TURN_FILE_SUFFIX, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            self.turn_fd = None  # no file, no turns: SQLite's busy handler still keeps writes safe
        self.turn_wait_seconds = wait_seconds

    def cursor(self, factory: Any = TurnTakingCursor) -> Any:
        # SQLAlchemy (and ``Connection.execute``) run every statement through a cursor of this.
        return super().cursor(factory)

    def take_turn_for(self, statement: str) -> None:
        """Before ``statement``: wait for this connection's turn if it writes and has none yet."""
        if self.turn_fd is None or self.has_turn or not is_write(statement):
            return
        pause = FIRST_PAUSE_SECONDS
        deadline: float | None = None
        while True:
            try:
                fcntl.flock(self.turn_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                now = time.monotonic()
                if deadline is None:
                    deadline = now + self.turn_wait_seconds
                elif now >= deadline:
                    return  # a holder that keeps its turn this long: let SQLite's lock decide
                time.sleep(pause)
                pause = min(pause * 2, MAX_PAUSE_SECONDS)
            else:
                self.has_turn = True
                return

    def give_turn_back(self) -> None:
        if self.has_turn and self.turn_fd is not None:
            self.has_turn = False
            fcntl.flock(self.turn_fd, fcntl.LOCK_UN)

    def give_turn_back_unless_in_transaction(self) -> None:
        """After a statement: a write that ran outside a transaction (DDL, a ``COMMIT``) is over."""
        if self.has_turn and not self.in_transaction:
            self.give_turn_back()

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self.give_turn_back()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self.give_turn_back()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.give_turn_back()
            if self.turn_fd is not None:
                os.close(self.turn_fd)
                self.turn_fd = None
