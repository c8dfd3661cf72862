"""What phase 3's tests share: fast-recovery settings, phase 3 processes, and real crashes.

Every later phase keeps phase 3's promises, so every test here runs on phase 3 *and* on each
later phase (ids ``phase3``, ``phase4``): the fault tests are the proof that monitoring changed
nothing about recovery.

Crashes are real signals to real processes. RQ's work horse calls ``setpgrp()``, so a signal
to the worker's process group does not reach it: :func:`crash` freezes the worker, SIGKILLs
every process it forked, then the worker itself, the way a lost machine or a container kill
takes everything at once.
"""

from __future__ import annotations

import importlib
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import redis
from sqlalchemy.engine import Engine

from tasklab_cli.processes import PHASES, ApiProcess, ManagedProcess, Phase, start_api, start_worker

#: The phases whose recovery these tests prove: phase 3, and every phase that keeps its promises.
RECOVERY_PHASES = [3, 4]

#: Recovery in about a second instead of the production defaults (10 s leases, 10 s grace):
#: the mechanisms are the same, only the clocks are faster.
FAST_RECOVERY: dict[str, str] = {
    "TASK_LEASE_SECONDS": "2",
    "RECONCILE_INTERVAL_SECONDS": "0.3",
    "RECONCILE_GRACE_SECONDS": "1",
    "RQ_MAINTENANCE_INTERVAL_SECONDS": "2",
    "RQ_JOB_MONITORING_INTERVAL_SECONDS": "1",
    "REDIS_RECONNECT_MAX_SECONDS": "0.5",
    # Three attempts, planned waits of 1 s then 2 s, no jitter: short, and predictable.
    "RETRY_MAX_ATTEMPTS": "3",
    "RETRY_BACKOFF_BASE_SECONDS": "1",
    "RETRY_BACKOFF_CAP_SECONDS": "2",
    "RETRY_BACKOFF_JITTER": "0",
}


@pytest.fixture(scope="module", params=RECOVERY_PHASES, ids=lambda n: f"phase{n}")
def recovery_phase(request: pytest.FixtureRequest) -> Phase:
    return PHASES[request.param]


@pytest.fixture(scope="module")
def queue_name(recovery_phase: Phase) -> str:
    """The phase's RQ queue (each phase has its own, so phases can share a Redis)."""
    return str(importlib.import_module(f"{recovery_phase.package}.jobs").QUEUE_NAME)


@pytest.fixture(scope="module")
def env(phase_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment of this module's processes (modules may override it)."""
    return {**phase_env, **FAST_RECOVERY, "METRICS_DIR": str(tmp_path_factory.mktemp("metrics"))}


@pytest.fixture(scope="module")
def api(recovery_phase: Phase, env: dict[str, str], db_engine: Engine) -> Iterator[ApiProcess]:
    server = start_api(recovery_phase, env)
    yield server
    server.stop()


@pytest.fixture
def client(api: ApiProcess, empty_store: Engine, redis_client: redis.Redis) -> Iterator[httpx.Client]:
    redis_client.flushdb()  # no job, lease or lock left over from another test
    with httpx.Client(base_url=api.base_url, timeout=10) as http:
        yield http


WorkerFactory = Callable[..., ManagedProcess]


@pytest.fixture
def workers(recovery_phase: Phase, env: dict[str, str]) -> Iterator[WorkerFactory]:
    """Start the phase's workers on demand (``extra_env`` changes one worker's settings); all stop after the test."""
    started: list[ManagedProcess] = []

    def start(*args: str, extra_env: dict[str, str] | None = None) -> ManagedProcess:
        worker = start_worker(recovery_phase, {**env, **(extra_env or {})}, *args, index=len(started) + 1)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


def _children() -> dict[int, list[int]]:
    """Every process's children, read from /proc (Linux)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # it exited while we looked
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    return children


def descendants(pid: int) -> list[int]:
    children = _children()
    found: list[int] = []
    frontier = list(children.get(pid, []))
    while frontier:
        child = frontier.pop()
        found.append(child)
        frontier += children.get(child, [])
    return found


def work_horses(worker: ManagedProcess) -> list[int]:
    """The work horses of a worker: its children that RQ moved into a process group of their own."""
    return [pid for pid in descendants(worker.pid) if os.getpgid(pid) == pid] if worker.alive() else []


def _sigkill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def kill_horse(worker: ManagedProcess) -> int:
    """SIGKILL the worker's current work horse only (what the OOM killer does); return its pid."""
    [horse] = work_horses(worker)
    _sigkill(horse)
    return horse


def crash(worker: ManagedProcess) -> None:
    """SIGKILL a worker and everything it forked (horse, scheduler) at once."""
    os.kill(worker.pid, signal.SIGSTOP)  # frozen: it cannot fork a new horse while we aim
    for pid in descendants(worker.pid):
        _sigkill(pid)
    worker.kill()
