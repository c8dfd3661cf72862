"""What phase 5's tests share: a phase 5 API, and worker pools started on demand.

A pool is the real thing: ``python -m phase5_scaling.worker`` (the supervisor) and its pool
processes, found as the supervisor's children. Each pool gets a metrics root of its own, so the
counts a test reads are that pool's, not an earlier pool's files adopted on the way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import psutil
import pytest
import redis
from sqlalchemy.engine import Engine

from tasklab_cli.processes import PHASES, ApiProcess, ManagedProcess, start_api, start_worker
from tests.phase3.conftest import FAST_RECOVERY

PHASE5 = PHASES[5]


@pytest.fixture(scope="module")
def env(phase_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Fast recovery (short leases, a reconciler every 0.3 s), JSON logs, a metrics root per module."""
    return {**phase_env, **FAST_RECOVERY, "METRICS_DIR": str(tmp_path_factory.mktemp("metrics")), "LOG_FORMAT": "json"}


@pytest.fixture(scope="module")
def api(env: dict[str, str], db_engine: Engine) -> Iterator[ApiProcess]:
    server = start_api(PHASE5, env)
    yield server
    server.stop()


@pytest.fixture
def client(api: ApiProcess, empty_store: Engine, redis_client: redis.Redis) -> Iterator[httpx.Client]:
    redis_client.flushdb()  # no job, lease or worker left over from another test
    with httpx.Client(base_url=api.base_url, timeout=10) as http:
        yield http


PoolFactory = Callable[..., ManagedProcess]


@pytest.fixture
def pools(env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[PoolFactory]:
    """Start pools (``extra_env`` changes one pool's settings); every pool is stopped after the test."""
    started: list[ManagedProcess] = []

    def start(*args: str, extra_env: dict[str, str] | None = None) -> ManagedProcess:
        metrics = {"METRICS_DIR": str(tmp_path_factory.mktemp("pool-metrics"))}
        pool = start_worker(PHASE5, {**env, **metrics, **(extra_env or {})}, *args, index=len(started) + 1)
        started.append(pool)
        return pool

    yield start
    for pool in started:
        pool.stop()


def pool_processes(pool: ManagedProcess) -> dict[str, int]:
    """The live pool processes of a supervisor, by name (``NAME-1`` …) → pid."""
    found: dict[str, int] = {}
    try:
        children = psutil.Process(pool.pid).children()
    except psutil.NoSuchProcess:
        return found
    for child in children:
        try:
            command, status = child.cmdline(), child.status()
        except (psutil.NoSuchProcess, psutil.ZombieProcess):  # exited while we looked
            continue
        if "--child" in command and status != psutil.STATUS_ZOMBIE:
            found[command[command.index("--name") + 1]] = child.pid
    return found
