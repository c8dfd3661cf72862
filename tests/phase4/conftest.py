"""What phase 4's tests share: a phase 4 API, workers with metrics endpoints, a private Prometheus.

Each test module gets its own metrics root (``METRICS_DIR``), so the counters it reads start
from nothing, like the database it gets.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import pytest
import redis
from sqlalchemy.engine import Engine

from shared.redis_server import free_port
from tasklab_cli.processes import (
    PHASES,
    ApiProcess,
    ManagedProcess,
    start_api,
    start_worker,
)
from tasklab_cli.prometheus import PrivatePrometheus
from tests.phase3.conftest import FAST_RECOVERY
from tests.tools import PROMETHEUS_INSTALL, require_binary

PHASE4 = PHASES[4]


@dataclass
class MonitoredWorker:
    """A phase 4 worker process and the port its ``/metrics`` listens on."""

    process: ManagedProcess
    metrics_port: int

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.metrics_port}"


WorkerFactory = Callable[..., MonitoredWorker]


@pytest.fixture(scope="module")
def env(phase_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return {**phase_env, **FAST_RECOVERY, "METRICS_DIR": str(tmp_path_factory.mktemp("metrics")), "LOG_FORMAT": "json"}


@pytest.fixture(scope="module")
def api(env: dict[str, str], db_engine: Engine) -> Iterator[ApiProcess]:
    server = start_api(PHASE4, env)
    yield server
    server.stop()


@pytest.fixture
def client(api: ApiProcess, empty_store: Engine, redis_client: redis.Redis) -> Iterator[httpx.Client]:
    redis_client.flushdb()
    with httpx.Client(base_url=api.base_url, timeout=10) as http:
        yield http


@pytest.fixture
def workers(env: dict[str, str]) -> Iterator[WorkerFactory]:
    """Start phase 4 workers, each with its own ``--metrics-port``; all stop after the test."""
    started: list[MonitoredWorker] = []

    def start(*args: str, extra_env: dict[str, str] | None = None) -> MonitoredWorker:
        port = free_port()
        process = start_worker(PHASE4, {**env, **(extra_env or {})}, "--metrics-port", str(port), *args, index=len(started) + 1)
        worker = MonitoredWorker(process, port)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.process.stop()


@pytest.fixture(scope="session")
def prometheus_binary() -> str:
    """Debian's Prometheus: skipped with a hint without it, a failure in CI (``tests/tools.py``)."""
    return require_binary("prometheus", PROMETHEUS_INSTALL)


@pytest.fixture(scope="session")
def promtool_binary() -> str:
    """Prometheus' own linter of the exposition format, shipped in the same Debian package."""
    return require_binary("promtool", PROMETHEUS_INSTALL)


def start_prometheus(api: ApiProcess, workers: list[MonitoredWorker]) -> PrivatePrometheus:
    return PrivatePrometheus({"api": [f"127.0.0.1:{api.port}"], "workers": [w.target for w in workers]}).start()


@pytest.fixture
def fresh_deployment(env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The module's environment with a metrics root of this test's own: counters start at zero.

    A module's processes share one root, and a worker that outlives its test's end adopts the
    files of those before it: that is the point of adoption, but a test comparing absolute
    counts with a freshly emptied table needs a deployment of its own.
    """
    return {**env, "METRICS_DIR": str(tmp_path_factory.mktemp("fresh-metrics"))}
