"""SQLite writers take turns (shared.writer_turns): who holds the turn, when it is given back, and
that turns never cost a write SQLite would have allowed, nor an update."""

from __future__ import annotations

import fcntl
import multiprocessing
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from phase5_scaling.db import create_db_engine
from phase5_scaling.writer_turns import TURN_FILE_SUFFIX, is_write

#: A write that has its turn is done in milliseconds; these bounds only catch a hang.
PROMPT_SECONDS = 2.0


@pytest.fixture
def database(tmp_path: Path) -> Path:
    return tmp_path / "tasks.db"


@pytest.fixture
def engine(database: Path) -> Iterator[Engine]:
    engine = create_db_engine(f"sqlite:///{database}", busy_timeout_ms=5000)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE counter (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)"))
        connection.execute(text("INSERT INTO counter (id, n) VALUES (1, 0)"))
    yield engine
    engine.dispose()


@contextmanager
def turn_held_elsewhere(database: Path) -> Iterator[None]:
    """Hold the database's turn as another writer would, from an open file of our own."""
    fd = os.open(f"{database}{TURN_FILE_SUFFIX}", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the file gives the turn back


def turn_is_free(database: Path) -> bool:
    fd = os.open(f"{database}{TURN_FILE_SUFFIX}", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


def increment(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(text("UPDATE counter SET n = n + 1 WHERE id = 1"))


def count(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT n FROM counter WHERE id = 1")).scalar_one())


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE task SET status = 'running'",
        "  insert into task VALUES (1)",
        "DELETE FROM task",
        "BEGIN IMMEDIATE",
        "CREATE TABLE t (x)",
    ],
)
def test_statements_that_write_are_recognised(statement: str) -> None:
    assert is_write(statement)


@pytest.mark.parametrize("statement", ["SELECT * FROM task", "PRAGMA journal_mode=WAL", "BEGIN", "COMMIT", "ROLLBACK"])
def test_statements_that_only_read_or_end_a_transaction_are_not_writes(statement: str) -> None:
    assert not is_write(statement)


def test_a_write_holds_the_turn_until_its_transaction_commits(engine: Engine, database: Path) -> None:
    with engine.connect() as connection:
        connection.execute(text("UPDATE counter SET n = n + 1 WHERE id = 1"))
        assert not turn_is_free(database)
        connection.commit()
        assert turn_is_free(database)


def test_a_rollback_gives_the_turn_back(engine: Engine, database: Path) -> None:
    with engine.connect() as connection:
        connection.execute(text("UPDATE counter SET n = n + 1 WHERE id = 1"))
        connection.rollback()
        assert turn_is_free(database)
    assert count(engine) == 0


@pytest.mark.alone  # a timing bound
def test_a_read_takes_no_turn(engine: Engine, database: Path) -> None:
    with turn_held_elsewhere(database):
        started = time.monotonic()
        assert count(engine) == 0
        assert time.monotonic() - started < PROMPT_SECONDS


@pytest.mark.alone  # a timing bound
def test_a_writer_waits_for_the_turn_and_writes_once_it_is_given_back(engine: Engine, database: Path) -> None:
    written = threading.Event()

    def write() -> None:
        increment(engine)
        written.set()

    writer = threading.Thread(target=write)
    with turn_held_elsewhere(database):
        writer.start()
        assert not written.wait(0.3), "the write went ahead while another writer had the turn"
    assert written.wait(PROMPT_SECONDS), "the write did not follow once the turn was given back"
    writer.join()
    assert count(engine) == 1


@pytest.mark.alone  # a timing bound
def test_a_turn_not_given_back_within_the_busy_timeout_does_not_stop_a_write(database: Path) -> None:
    # The holder has the turn but not SQLite's lock: after the busy timeout, SQLite decides.
    engine = create_db_engine(f"sqlite:///{database}", busy_timeout_ms=300)
    try:
        with engine.begin() as connection:
            connection.execute(text("CREATE TABLE counter (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)"))
            connection.execute(text("INSERT INTO counter (id, n) VALUES (1, 0)"))
        with turn_held_elsewhere(database):
            started = time.monotonic()
            increment(engine)
            waited = time.monotonic() - started
        assert 0.3 <= waited < PROMPT_SECONDS
        assert count(engine) == 1
    finally:
        engine.dispose()


def add_many(database: str, times: int) -> None:
    """One process's share of :func:`test_processes_writing_at_once_lose_no_update`."""
    engine = create_db_engine(f"sqlite:///{database}", busy_timeout_ms=5000)
    for _ in range(times):
        increment(engine)
    engine.dispose()


def test_processes_writing_at_once_lose_no_update(engine: Engine, database: Path) -> None:
    spawn = multiprocessing.get_context("spawn")  # real processes, each with its own engine
    writers = [spawn.Process(target=add_many, args=(str(database), 300)) for _ in range(3)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(timeout=60)
        assert writer.exitcode == 0
    assert count(engine) == 900


def test_turns_can_be_switched_off(tmp_path: Path) -> None:
    database = tmp_path / "plain.db"
    engine = create_db_engine(f"sqlite:///{database}", writer_turns=False)
    try:
        with engine.begin() as connection:
            connection.execute(text("CREATE TABLE t (x INTEGER)"))
            connection.execute(text("INSERT INTO t VALUES (1)"))
    finally:
        engine.dispose()
    assert not Path(f"{database}{TURN_FILE_SUFFIX}").exists()


def test_an_in_memory_database_takes_no_turns() -> None:
    engine = create_db_engine("sqlite://")
    try:
        with engine.begin() as connection:
            connection.execute(text("CREATE TABLE t (x INTEGER)"))
            connection.execute(text("INSERT INTO t VALUES (1)"))
            assert connection.execute(text("SELECT count(*) FROM t")).scalar_one() == 1
    finally:
        engine.dispose()
