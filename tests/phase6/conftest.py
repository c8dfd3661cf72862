"""What phase 6's tests share: API keys, and the phase 6 app served by real uvicorn processes.

The security tests run without Docker: the layer is plain ASGI in front of a FastAPI app, and
its rate limit lives in the real Redis the session starts (``redis_server``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import redis
from sqlalchemy.engine import Engine

from tasklab_cli.processes import ApiProcess, start_api
from tests.support import KEYS, PHASE6, bearer, key_hashes

__all__ = ["KEYS", "PHASE6", "ApiFactory", "bearer", "key_hashes"]


@pytest.fixture
def flushed_redis(redis_client: redis.Redis) -> redis.Redis:
    """No rate-limit bucket left over from another test."""
    redis_client.flushdb()
    return redis_client


ApiFactory = Callable[..., ApiProcess]


def api_factory(phase_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiFactory]:
    """Start phase 6 API servers (real uvicorn processes) sharing one database and one Redis."""
    started: list[ApiProcess] = []
    metrics = str(tmp_path_factory.mktemp("metrics"))

    def start(**extra_env: str) -> ApiProcess:
        env = {**phase_env, "METRICS_DIR": metrics, "API_KEY_HASHES": key_hashes(), "LOG_FORMAT": "json", **extra_env}
        server = start_api(PHASE6, env)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def phase6_apis(phase_env: dict[str, str], db_engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiFactory]:
    """Servers for one test (their settings are the test's), stopped after it."""
    yield from api_factory(phase_env, tmp_path_factory)


@pytest.fixture(scope="module")
def phase6_api_module(
    phase_env: dict[str, str], db_engine: Engine, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiFactory]:
    """Servers shared by a module's tests, stopped after the module."""
    yield from api_factory(phase_env, tmp_path_factory)
