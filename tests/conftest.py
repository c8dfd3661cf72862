"""Fixtures shared by every test: a real Redis, a real database, real phase processes.

* ``redis_server``: one private ``redis-server`` for the session (``REDIS_URL`` is ignored on
  purpose: fault tests stop and wipe it, which must never happen to somebody's real Redis).
* ``database_url``: a fresh SQLite file per test module, and, when ``TEST_DATABASE_URL`` is
  set, the same tests again on PostgreSQL (ids ``[sqlite]`` and ``[postgresql]``).
* ``phase_env``: the environment a phase's processes run with (time scaled to 0).

The suite runs in parallel (pytest-xdist, ``make test``): each xdist worker is a pytest session of
its own, so it starts its own Redis and makes its own SQLite files, and on PostgreSQL it gets a
database of its own (``test_gw0``, ``test_gw1`` …), created here at its start and dropped at its
end. ``--phase N`` keeps the tests that run against phase N (``tests/selection.py``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from sqlalchemy import create_engine, inspect, make_url, text
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from phase5_scaling.db import create_db_engine, init_db
from shared.redis_server import PrivateRedis
from tests import parallel, selection

BACKENDS = ["sqlite", "postgresql"]
#: Where CI (and a contributor) names the PostgreSQL database the tests may drop tables in.
POSTGRES_VARIABLE = "TEST_DATABASE_URL"
#: The URL the run was given, kept while a worker's own database stands in for it.
_SHARED_POSTGRES = pytest.StashKey[str]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--phase",
        choices=selection.CHOICES,
        help="only the tests that run against phase N (make test PHASE=N), or 'tools' for the docs, bench and cli tests",
    )


@pytest.hookimpl(wrapper=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> Iterator[None]:
    # Before every other plugin: xdist reads the groups, pytest orders the tests by their fixtures.
    selection.deselect(config, items, config.getoption("--phase"))
    selection.deselect_repeats(config, items, postgres=bool(os.environ.get(POSTGRES_VARIABLE)))
    parallel.group_for_xdist(items)
    yield
    # After them all: the longest units first, or one of them may start last.
    parallel.longest_first(items)


def _postgres_admin(url: str) -> Engine:
    # CREATE and DROP DATABASE cannot run inside a transaction.
    return create_engine(url, isolation_level="AUTOCOMMIT")


def pytest_sessionstart(session: pytest.Session) -> None:
    """Give this xdist worker a PostgreSQL database of its own, so parallel tests never drop each other's tables.

    ``TEST_DATABASE_URL`` is rewritten for the session, so everything that reads it (the fixtures
    below, ``bench``'s PostgreSQL parts started as subprocesses) uses the worker's database.
    """
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    base = os.environ.get(POSTGRES_VARIABLE)
    if not worker or not base:
        return
    url = make_url(base)
    own = url.set(database=f"{url.database}_{worker}")
    admin = _postgres_admin(base)
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{own.database}" WITH (FORCE)'))  # left by a killed run
        connection.execute(text(f'CREATE DATABASE "{own.database}"'))
    admin.dispose()
    session.config.stash[_SHARED_POSTGRES] = base
    os.environ[POSTGRES_VARIABLE] = own.render_as_string(hide_password=False)


def pytest_sessionfinish(session: pytest.Session) -> None:
    base = session.config.stash.get(_SHARED_POSTGRES, None)
    if base is None:
        return
    own = make_url(os.environ[POSTGRES_VARIABLE]).database
    os.environ[POSTGRES_VARIABLE] = base
    admin = _postgres_admin(base)
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{own}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def machine_turns(tmp_path_factory: pytest.TempPathFactory) -> parallel.MachineTurns:
    """The lock files, in the folder every xdist process of this run keeps its temporary files under."""
    base = tmp_path_factory.getbasetemp()
    return parallel.MachineTurns((base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "machine-turns")


@pytest.fixture(autouse=True)
def machine_turn(request: pytest.FixtureRequest, machine_turns: parallel.MachineTurns) -> Iterator[None]:
    """Every test holds the machine shared; one marked ``alone`` holds it by itself (tests/parallel.py)."""
    with machine_turns.alone() if request.node.get_closest_marker("alone") else machine_turns.shared():
        yield


@pytest.fixture(scope="session")
def redis_server() -> Iterator[PrivateRedis]:
    server = PrivateRedis().start()
    yield server
    server.cleanup()


@pytest.fixture(scope="session")
def redis_url(redis_server: PrivateRedis) -> str:
    return redis_server.url


@pytest.fixture
def own_redis() -> Iterator[PrivateRedis]:
    """A Redis of the test's own, to kill, wipe and start again on the same port without
    disturbing the tests that share the session's."""
    server = PrivateRedis().start()
    yield server
    server.cleanup()


@pytest.fixture
def redis_client(redis_server: PrivateRedis) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server.url)
    yield client
    client.close()


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "postgresql" and not os.environ.get(POSTGRES_VARIABLE):
        pytest.skip("TEST_DATABASE_URL is not set: PostgreSQL run skipped")
    return str(request.param)


@pytest.fixture(scope="module")
def database_url(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh, empty task store for one test module."""
    if backend == "sqlite":
        path: Path = tmp_path_factory.mktemp("db") / "tasks.db"
        yield f"sqlite:///{path}"
        return
    url = os.environ[POSTGRES_VARIABLE]
    engine = create_db_engine(url)
    SQLModel.metadata.drop_all(engine)  # a schema left by an older run must not leak in
    engine.dispose()
    yield url


@pytest.fixture(scope="module")
def db_engine(database_url: str) -> Iterator[Engine]:
    engine = create_db_engine(database_url)
    init_db(engine)
    yield engine
    engine.dispose()


#: The aggregates phases 4 to 6 keep for ``/stats`` (their ``monitoring/aggregates.py``): history
#: that a ``DELETE FROM task`` leaves in place, so a test that starts from an empty store clears them too.
STATS_AGGREGATE_TABLES = (
    "task_stats_event",
    "task_status_count",
    "task_outcome_rollup",
    "task_latency_rollup",
    "task_error_rollup",
)


@pytest.fixture
def empty_store(db_engine: Engine) -> Engine:
    """Delete every task (and the /stats figures about them) before the test, so counts and lists start from zero."""
    present = set(inspect(db_engine).get_table_names())
    with db_engine.begin() as connection:
        connection.execute(text("DELETE FROM task"))
        for table in STATS_AGGREGATE_TABLES:
            if table in present:
                connection.execute(text(f"DELETE FROM {table}"))
    return db_engine


@pytest.fixture(scope="module")
def phase_env(database_url: str, redis_url: str) -> dict[str, str]:
    # /stats answers from a one-second cache by default; the tests seed rows and read at once.
    return {"DATABASE_URL": database_url, "REDIS_URL": redis_url, "TASK_TIME_SCALE": "0", "STATS_CACHE_SECONDS": "0"}
