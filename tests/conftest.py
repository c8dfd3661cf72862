"""Fixtures shared by every test: a real Redis, a real database, real phase processes.

* ``redis_server``: one private ``redis-server`` for the session (``REDIS_URL`` is ignored on
  purpose: fault tests stop and wipe it, which must never happen to somebody's real Redis).
* ``database_url``: a fresh SQLite file per test module, and, when ``TEST_DATABASE_URL`` is
  set, the same tests again on PostgreSQL (ids ``[sqlite]`` and ``[postgresql]``).
* ``phase_env``: the environment a phase's processes run with (time scaled to 0).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from shared.db import create_db_engine, init_db
from shared.redis_server import PrivateRedis

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(scope="session")
def redis_server() -> Iterator[PrivateRedis]:
    server = PrivateRedis().start()
    yield server
    server.cleanup()


@pytest.fixture(scope="session")
def redis_url(redis_server: PrivateRedis) -> str:
    return redis_server.url


@pytest.fixture
def redis_client(redis_server: PrivateRedis) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server.url)
    yield client
    client.close()


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "postgresql" and not os.environ.get("TEST_DATABASE_URL"):
        pytest.skip("TEST_DATABASE_URL is not set: PostgreSQL run skipped")
    return str(request.param)


@pytest.fixture(scope="module")
def database_url(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh, empty task store for one test module."""
    if backend == "sqlite":
        path: Path = tmp_path_factory.mktemp("db") / "tasks.db"
        yield f"sqlite:///{path}"
        return
    url = os.environ["TEST_DATABASE_URL"]
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


@pytest.fixture
def empty_store(db_engine: Engine) -> Engine:
    """Delete every task before the test, so counts and lists start from zero."""
    with db_engine.begin() as connection:
        connection.execute(text("DELETE FROM task"))
    return db_engine


@pytest.fixture(scope="module")
def phase_env(database_url: str, redis_url: str) -> dict[str, str]:
    return {"DATABASE_URL": database_url, "REDIS_URL": redis_url, "TASK_TIME_SCALE": "0"}
