"""What phase 3's tests share: fast-recovery settings, phase 3 processes, and real crashes.

Every later phase keeps phase 3's promises, so every test here runs on phase 3 *and* on each
later phase (ids ``phase3`` … ``phase6``): the fault tests are the proof that monitoring,
scaling and the deployment changed nothing about recovery. Phase 6's instances (the same
system behind API keys: every request carries one) are in the slow set that CI runs, which keeps
``make test PHASE=6`` in its budget, and on PostgreSQL, the database phase 6 deploys with, when
the run has it.

What "a worker" is depends on the phase, and the fixtures below hide the difference:

* phases 3 and 4: ``python -m phaseN_x.worker``, one RQ worker that forks a **work horse** per
  job (the horse calls ``setpgrp()``: a process group of its own);
* phases 5 and 6: ``python -m phaseN_x.worker``, a **pool**: a supervisor and its pool
  processes (one, unless a test asks for more with ``--processes``). There is no fork per job: the
  pool process that took the job runs it, and it too lives in a process group of its own. Its
  tasks record the process's name, ``NAME-1``, not the pool's (:func:`task_worker`).

Crashes are real signals to real processes. :func:`kill_horse` SIGKILLs only the process
running the task (what the OOM killer does): a work horse, or a pool process, which its
supervisor then replaces. :func:`crash` freezes the worker (or the supervisor), SIGKILLs every
process it started, then the worker itself, the way a lost machine or a container kill takes
everything at once.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import redis
from sqlalchemy.engine import Engine

from shared.models import PRIORITY_DEFAULT
from tasklab_cli.processes import ApiProcess, ManagedProcess, Phase, start_api, start_worker
from tests.support import EVERY_PHASE, client_headers, keyed_env

#: The phases whose recovery these tests prove: phase 3, and every phase that keeps its promises.
RECOVERY_PHASES = [
    pytest.param(3, id="phase3"),
    pytest.param(4, id="phase4"),
    pytest.param(5, id="phase5"),
    pytest.param(6, id="phase6", marks=[pytest.mark.slow, pytest.mark.on_deployed_database]),
]

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


@pytest.fixture(scope="module", params=RECOVERY_PHASES)
def recovery_phase(request: pytest.FixtureRequest) -> Phase:
    return EVERY_PHASE[request.param]


def default_queue(phase: Phase) -> str:
    """The RQ queue a task of the default priority waits in (each phase has its own names, so
    phases can share a Redis): phases 3 and 4 have one queue, phases 5 and 6 one per priority level."""
    jobs = importlib.import_module(f"{phase.package}.jobs")
    if phase.has_pool:
        return str(jobs.QUEUE_NAMES[jobs.PRIORITIES.index(PRIORITY_DEFAULT)])
    return str(jobs.QUEUE_NAME)


@pytest.fixture(scope="module")
def queue_name(recovery_phase: Phase) -> str:
    return default_queue(recovery_phase)


@pytest.fixture(scope="module")
def env(phase_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment of this module's processes (modules may override it)."""
    return {**phase_env, **FAST_RECOVERY, "METRICS_DIR": str(tmp_path_factory.mktemp("metrics"))}


@pytest.fixture(scope="module")
def api(recovery_phase: Phase, env: dict[str, str], db_engine: Engine) -> Iterator[ApiProcess]:
    server = start_api(recovery_phase, {**env, **keyed_env(recovery_phase)})
    yield server
    server.stop()


@pytest.fixture
def client(api: ApiProcess, recovery_phase: Phase, empty_store: Engine, redis_client: redis.Redis) -> Iterator[httpx.Client]:
    redis_client.flushdb()  # no job, lease or lock left over from another test
    with httpx.Client(base_url=api.base_url, headers=client_headers(recovery_phase), timeout=10) as http:
        yield http


WorkerFactory = Callable[..., ManagedProcess]


@pytest.fixture
def workers(recovery_phase: Phase, env: dict[str, str]) -> Iterator[WorkerFactory]:
    """Start the phase's workers on demand (``extra_env`` changes one worker's settings); all stop after the test.

    On phases 5 and 6 a worker is a pool of one process, unless the arguments say ``--processes N``.
    """
    started: list[ManagedProcess] = []

    def start(*args: str, extra_env: dict[str, str] | None = None) -> ManagedProcess:
        if recovery_phase.has_pool and "--processes" not in args:
            args = ("--processes", "1", *args)
        worker = start_worker(recovery_phase, {**env, **(extra_env or {})}, *args, index=len(started) + 1)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


def task_worker(phase: Phase, name: str) -> str:
    """What ``task.worker`` records for a task run by the worker started with ``--name NAME``:
    the name itself, or, for a pool of one process, that process's name ``NAME-1``."""
    return f"{name}-1" if phase.has_pool else name


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
    """The processes that run a worker's tasks: its descendants in a process group of their own.

    Phases 3 and 4: RQ's work horse, forked for the job and moved into its own group by RQ.
    Phase 5: the pool processes, which the supervisor starts each in its own group.
    """
    return [pid for pid in descendants(worker.pid) if os.getpgid(pid) == pid] if worker.alive() else []


def _sigkill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def kill_horse(worker: ManagedProcess) -> int:
    """SIGKILL only the process running the worker's task (what the OOM killer does); return its pid.

    That is the work horse (phases 3 and 4) or, in a pool of one process, that process (phase 5).
    """
    [horse] = work_horses(worker)
    _sigkill(horse)
    return horse


def crash(worker: ManagedProcess) -> None:
    """SIGKILL a worker and everything it started (horse, scheduler, reconciler; or a pool's processes) at once."""
    os.kill(worker.pid, signal.SIGSTOP)  # frozen: it cannot fork a new horse or process while we aim
    for pid in descendants(worker.pid):
        _sigkill(pid)
    worker.kill()
