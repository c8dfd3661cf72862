"""Retries, backoff, permanent errors and timeouts, with a real worker, real Redis and RQ's scheduler.

This module's settings: 3 attempts, planned waits of 2 s then 4 s (no jitter). RQ's scheduler
works in whole seconds (it files a retry under the second it is due and wakes once a second),
so a planned wait of n s is served between n - 1 and n + 1 s after the failure.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import httpx
import pytest

from tests.phase3.conftest import FAST_RECOVERY, WorkerFactory
from tests.support import submit, wait_for, wait_for_status

#: ``compute`` gets a 1 s limit (and 2 attempts) in this module; 50 million additions take longer.
SLOW_COMPUTE = {"n": 200_000_000}  # about 4 s on a fast core: always past the 1 s limit


@pytest.fixture(scope="module")
def env(phase_env: dict[str, str]) -> dict[str, str]:
    return {
        **phase_env,
        **FAST_RECOVERY,
        "RETRY_BACKOFF_BASE_SECONDS": "2",
        "RETRY_BACKOFF_CAP_SECONDS": "4",
        "TASK_POLICIES": '{"compute": {"timeout_seconds": 1, "max_attempts": 2}}',
    }


def watch_attempts(
    client: httpx.Client, task_id: str, *, timeout: float = 20
) -> tuple[dict[str, Any], dict[int, float], list[dict[str, Any]]]:
    """Poll a task to its end; return it, when each attempt was first seen, and every distinct state seen."""
    first_seen: dict[int, float] = {}
    states: list[dict[str, Any]] = []

    def ended() -> dict[str, Any] | None:
        task = client.get(f"/tasks/{task_id}").json()
        first_seen.setdefault(task["attempts"], time.monotonic())
        if not states or (states[-1]["status"], states[-1]["attempts"]) != (task["status"], task["attempts"]):
            states.append(task)
        return task if task["status"] in ("completed", "failed", "cancelled") else None

    return wait_for(ended, timeout=timeout, interval=0.02, message=f"task {task_id} to end"), first_seen, states


def test_flaky_task_completes_on_attempt_k_plus_1_after_backoff_waits(client: httpx.Client, workers: WorkerFactory) -> None:
    """fail_times=2: attempts 1 and 2 fail, attempt 3 succeeds, after waits of about 2 s and then 4 s."""
    workers()
    task = submit(client, "flaky", {"fail_times": 2})

    done, first_seen, states = watch_attempts(client, task["id"])

    assert (done["status"], done["attempts"], done["result"]) == ("completed", 3, {"succeeded_on_attempt": 3})
    assert done["error"] is None  # a success clears the last error
    first_wait, second_wait = first_seen[2] - first_seen[1], first_seen[3] - first_seen[2]
    # Planned 2 s and 4 s, served to the whole second by RQ's scheduler (see the module docstring).
    assert 2 - 1.1 <= first_wait < 2 + 2, first_wait
    assert 4 - 1.1 <= second_wait < 4 + 2, second_wait
    assert second_wait > first_wait  # the wait grows
    retrying = [s for s in states if s["status"] == "retrying"]
    assert [s["attempts"] for s in retrying] == [1, 2]
    assert "TransientTaskError: flaky: attempt 1 fails on purpose" in retrying[0]["error"]


def test_transient_errors_past_the_last_attempt_end_failed_with_the_last_error(
    client: httpx.Client, workers: WorkerFactory
) -> None:
    """A dead letter: 3 attempts used, `failed`, and the error of the third attempt kept."""
    workers()
    task = submit(client, "flaky", {"fail_times": 5})

    done = wait_for_status(client, task["id"], timeout=20)

    assert (done["status"], done["attempts"]) == ("failed", 3)
    assert done["error"] == "TransientTaskError: flaky: attempt 3 fails on purpose (5 planned)"


def test_permanent_error_fails_on_attempt_1_without_retry(client: httpx.Client, workers: WorkerFactory) -> None:
    workers()
    task = submit(client, "flaky", {"fail_times": 3, "permanent": True})

    done, _, states = watch_attempts(client, task["id"])

    assert (done["status"], done["attempts"]) == ("failed", 1)
    assert done["error"].startswith("PermanentTaskError: flaky: attempt 1 fails on purpose")
    assert "retrying" not in [s["status"] for s in states]


def test_a_task_over_its_time_limit_is_stopped_and_fails_saying_so(client: httpx.Client, workers: WorkerFactory) -> None:
    """compute has a 1 s limit here: each attempt is stopped after 1 s, counted, and retried once."""
    workers()
    task = submit(client, "compute", SLOW_COMPUTE)

    done = wait_for_status(client, task["id"], timeout=20)

    assert (done["status"], done["attempts"]) == ("failed", 2)
    assert done["error"] == "TimeoutError: attempt 2 timed out after 1 s and was stopped"
    assert done["result"] is None


def test_a_waiting_retry_is_scheduled_in_redis_and_leaves_the_worker_free(
    client: httpx.Client, workers: WorkerFactory, redis_client: Any, queue_name: str
) -> None:
    """During the wait before attempt 3, the job sits in RQ's ScheduledJobRegistry and the only
    worker runs other tasks: a retry never sleeps inside a worker."""
    workers()
    flaky = submit(client, "flaky", {"fail_times": 2})
    wait_for(lambda: client.get(f"/tasks/{flaky['id']}").json()["attempts"] == 2, message="attempt 2")
    wait_for(
        lambda: redis_client.zscore(f"rq:scheduled:{queue_name}", flaky["id"]) is not None,
        timeout=5,
        message="the retry scheduled",
    )

    quick = wait_for_status(client, submit(client, "noop")["id"], timeout=5)
    flaky_done = wait_for_status(client, flaky["id"])

    assert (quick["status"], flaky_done["status"]) == ("completed", "completed")
    # The noop ran to its end before attempt 3 began.
    assert datetime.fromisoformat(quick["completed_at"]) < datetime.fromisoformat(flaky_done["started_at"])
