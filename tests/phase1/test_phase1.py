"""Phase 1's lesson, shown by its tests: work run in the API process dies with it.

The contract suite (tests/contract) already proves phase 1 runs every task type correctly.
What is specific to phase 1 is what it *cannot* do, and a test is the honest way to show it.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy.engine import Engine

from tasklab_cli.processes import PHASES, ApiProcess, start_api
from tests.support import submit, wait_for_status

PHASE1 = PHASES[1]


@pytest.fixture
def slow_env(phase_env: dict[str, str], empty_store: Engine) -> dict[str, str]:
    """Real simulated durations: an ai_summarization task takes its full 5 s seed."""
    return {**phase_env, "TASK_TIME_SCALE": "1"}


@pytest.fixture
def servers() -> Iterator[list[ApiProcess]]:
    started: list[ApiProcess] = []
    yield started
    for server in started:
        server.stop()


def test_task_in_flight_is_lost_when_the_api_process_dies(slow_env: dict[str, str], servers: list[ApiProcess]) -> None:
    """Given a task running in the API process, when that process is killed, nobody finishes it."""
    first = start_api(PHASE1, slow_env)
    servers.append(first)
    with httpx.Client(base_url=first.base_url, timeout=5) as client:
        task = submit(client, "ai_summarization", {"text": "One sentence. Another one."})
        wait_for_status(client, task["id"], ["running"])

    first.kill()  # SIGKILL: a crash, an OOM kill, a redeploy without draining
    second = start_api(PHASE1, slow_env)
    servers.append(second)

    with httpx.Client(base_url=second.base_url, timeout=5) as client:
        # The new server works: a new task completes …
        fresh = submit(client, "noop")
        assert wait_for_status(client, fresh["id"])["status"] == "completed"
        # … but the old one is still "running", on a worker that no longer exists.
        orphan = client.get(f"/tasks/{task['id']}").json()
    assert orphan["status"] == "running"
    assert orphan["worker"] == f"phase1-api-{first.pid}"
    assert orphan["completed_at"] is None


def test_the_task_runs_inside_the_api_process(phase_env: dict[str, str], empty_store: Engine, servers: list[ApiProcess]) -> None:
    """The 'worker' of a phase 1 task is the API server itself."""
    api = start_api(PHASE1, phase_env)
    servers.append(api)
    with httpx.Client(base_url=api.base_url, timeout=5) as client:
        task = submit(client, "fibonacci", {"n": 20})
        done = wait_for_status(client, task["id"])

    assert done["result"] == 6765
    assert done["worker"] == f"phase1-api-{api.pid}"
