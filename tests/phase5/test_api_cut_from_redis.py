"""The API cut off from Redis alone: it keeps accepting, and every task it accepted completes.

The API runs on a second "host" (tests/netns.py) and reaches PostgreSQL and Redis through the
pair of interfaces; for 10 s every packet between it and Redis is dropped (PostgreSQL and its
clients still reach it). Phase 5 accepts a task once its row is stored (chapter 5): the enqueue
waits at most REDIS_TIMEOUT_SECONDS, fails, and the reconciler enqueues the task later. So
every answer during the cut is a 202, and every 202 becomes a completed task.

PostgreSQL only: a SQLite file on a shared disk is not reached over the network.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from sqlalchemy.engine import make_url

from shared.redis_server import free_port
from tasklab_cli.processes import ManagedProcess
from tests.netns import other_host
from tests.phase5.conftest import PHASE5, PoolFactory
from tests.support import wait_for

CUT_SECONDS = 10.0
CLIENTS = 4


@pytest.mark.slow  # about 20 s: CI runs it (make test-slow)
@pytest.mark.timeout(180)
def test_an_api_cut_off_from_redis_accepts_and_every_accepted_task_completes(
    env: dict[str, str],
    backend: str,
    empty_store: object,
    pools: PoolFactory,
    record_property: Callable[[str, object], None],
) -> None:
    if backend != "postgresql":
        pytest.skip("a SQLite file on a shared disk is not reached over the network (TEST_DATABASE_URL runs it)")
    with other_host() as host:
        database, redis_url = make_url(env["DATABASE_URL"]), make_url(env["REDIS_URL"])
        redis_port = host.reach(redis_url.port or 6379)
        over_the_pair = {
            **env,
            "DATABASE_URL": database.set(host=host.host_address, port=host.reach(database.port or 5432)).render_as_string(
                hide_password=False
            ),
            "REDIS_URL": redis_url.set(host=host.host_address, port=redis_port).render_as_string(),
        }
        port = free_port()
        api_command = [sys.executable, "-m", "uvicorn", PHASE5.api_target, "--host", host.other_address, "--port", str(port)]
        api = ManagedProcess("api-on-the-far-host", host.command(*api_command, "--log-level", "warning"), over_the_pair)
        try:
            pools("--processes", "2")
            base_url = f"http://{host.other_address}:{port}"
            wait_for(lambda: _answers(base_url), timeout=30, message="the far API answering /health")
            answers: Counter[int] = Counter()
            accepted: list[str] = []

            def submit_until(deadline: float) -> None:
                with httpx.Client(base_url=base_url, timeout=10) as client:
                    while time.monotonic() < deadline:
                        response = client.post("/tasks", json={"task_type": "fibonacci", "payload": {"n": 10}})
                        answers[response.status_code] += 1
                        if response.status_code == 202:
                            accepted.append(response.json()["id"])

            host.cut_port(redis_port)
            began = time.monotonic()
            with ThreadPoolExecutor(max_workers=CLIENTS) as clients:
                list(clients.map(submit_until, [began + CUT_SECONDS] * CLIENTS))
            host.heal()
            during_cut = dict(answers)

            with httpx.Client(base_url=base_url, timeout=10) as client:

                def all_completed() -> bool:
                    return all(client.get(f"/tasks/{task_id}").json()["status"] == "completed" for task_id in accepted)

                wait_for(all_completed, timeout=90, interval=0.5, message=f"all {len(accepted)} accepted tasks completed")
        finally:
            api.stop()

    assert set(during_cut) == {202}, during_cut  # accepted, every one: the row is the promise
    assert accepted, "no task was submitted during the cut"
    summary = f"API cut off from Redis for {CUT_SECONDS:.0f} s: answers {during_cut}; {len(accepted)}/{len(accepted)} completed"
    record_property("api_redis_cut", summary)
    print(summary, file=sys.stderr)


def _answers(base_url: str) -> bool:
    try:
        return httpx.get(f"{base_url}/health", timeout=1).status_code == 200
    except httpx.TransportError:
        return False
