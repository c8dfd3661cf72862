"""What phase 4's tests share: an API, workers with metrics endpoints, a private Prometheus.

Every later phase keeps phase 4's contract (its metrics, its log lines, ``/stats``), so the
metrics, logs and stats tests run on phase 4 *and* on each later phase (ids ``phase4`` …
``phase6``), each against that phase's own copy of the monitoring code. Phases 5 and 6's
instances are in the slow set CI runs, which keeps ``make test PHASE=5`` and ``PHASE=6`` in their
budgets; phase 6's run on PostgreSQL, the database it deploys with, when the run has it. On
those phases a worker is a pool of one process (its tasks record ``NAME-1``); phase 6 wants an
API key on every request, ``/metrics`` included, and Prometheus sends one.

Each test module gets its own metrics root (``METRICS_DIR``), so the counters it reads start
from nothing, like the database it gets.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import ModuleType

import httpx
import pytest
import redis
from sqlalchemy.engine import Engine

from shared.redis_server import free_port
from tasklab_cli.processes import (
    ApiProcess,
    ManagedProcess,
    Phase,
    start_api,
    start_worker,
)
from tasklab_cli.prometheus import PrivatePrometheus
from tests.phase3.conftest import FAST_RECOVERY
from tests.support import EVERY_PHASE, KEYS, client_headers, keyed_env, scrape
from tests.tools import PROMETHEUS_INSTALL, require_binary

PHASE4 = EVERY_PHASE[4]

#: The phases whose monitoring these tests check: phase 4, and every phase that keeps its contract.
MONITORING_PHASES = [
    pytest.param(4, id="phase4"),
    pytest.param(5, id="phase5", marks=pytest.mark.slow),
    pytest.param(6, id="phase6", marks=[pytest.mark.slow, pytest.mark.on_deployed_database]),
]


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


@pytest.fixture(scope="module", params=MONITORING_PHASES)
def monitoring_phase(request: pytest.FixtureRequest) -> Phase:
    """The phase under test (a module may narrow it: the dashboard's browser tests run on phase 4)."""
    return EVERY_PHASE[request.param]


def phase_module(phase: Phase, name: str) -> ModuleType:
    """The phase's own copy of a module (``monitoring.metrics``, ``transitions``, …)."""
    return importlib.import_module(f"{phase.package}.{name}")


def queue_names(phase: Phase) -> list[str]:
    """The phase's RQ queues, as ``/stats`` and ``tasklab_queue_depth`` list them: one on phase 4,
    one per priority level (highest first) from phase 5."""
    jobs = phase_module(phase, "jobs")
    return [str(name) for name in jobs.QUEUE_NAMES] if phase.has_pool else [str(jobs.QUEUE_NAME)]


@pytest.fixture(scope="module")
def env(phase_env: dict[str, str], monitoring_phase: Phase, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    metrics = str(tmp_path_factory.mktemp("metrics"))
    return {**phase_env, **FAST_RECOVERY, **keyed_env(monitoring_phase), "METRICS_DIR": metrics, "LOG_FORMAT": "json"}


@pytest.fixture(scope="module")
def api(monitoring_phase: Phase, env: dict[str, str], db_engine: Engine) -> Iterator[ApiProcess]:
    server = start_api(monitoring_phase, env)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def headers(monitoring_phase: Phase) -> dict[str, str]:
    """What every request to the API carries (phase 6: an API key)."""
    return client_headers(monitoring_phase)


@pytest.fixture
def client(api: ApiProcess, headers: dict[str, str], empty_store: Engine, redis_client: redis.Redis) -> Iterator[httpx.Client]:
    redis_client.flushdb()
    with httpx.Client(base_url=api.base_url, headers=headers, timeout=10) as http:
        yield http


@pytest.fixture(scope="module")
def scrape_api(headers: dict[str, str]) -> Callable[[ApiProcess], str]:
    """The text of an API's ``/metrics``, fetched with the key phase 6 asks for."""
    return lambda server: scrape(f"{server.base_url}/metrics", headers)


@pytest.fixture
def workers(monitoring_phase: Phase, env: dict[str, str]) -> Iterator[WorkerFactory]:
    """Start the phase's workers, each with its own ``--metrics-port``; all stop after the test.

    From phase 5 on, a worker is a pool of one process unless the arguments say ``--processes N``.
    """
    started: list[MonitoredWorker] = []

    def start(*args: str, extra_env: dict[str, str] | None = None) -> MonitoredWorker:
        port = free_port()
        if monitoring_phase.has_pool and "--processes" not in args:
            args = ("--processes", "1", *args)
        worker_env = {**env, **(extra_env or {})}
        process = start_worker(monitoring_phase, worker_env, "--metrics-port", str(port), *args, index=len(started) + 1)
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


def start_prometheus(api: ApiProcess, workers: list[MonitoredWorker], phase: Phase) -> PrivatePrometheus:
    """A private Prometheus scraping the API and the workers (phase 6's API with a key)."""
    tokens = {"api": KEYS["alice"]} if client_headers(phase) else {}
    return PrivatePrometheus({"api": [f"127.0.0.1:{api.port}"], "workers": [w.target for w in workers]}, tokens).start()


@pytest.fixture
def fresh_deployment(env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The module's environment with a metrics root of this test's own: counters start at zero.

    A module's processes share one root, and a worker that outlives its test's end adopts the
    files of those before it: that is the point of adoption, but a test comparing absolute
    counts with a freshly emptied table needs a deployment of its own.
    """
    return {**env, "METRICS_DIR": str(tmp_path_factory.mktemp("fresh-metrics"))}
