"""Dead letters and what an operator can do about them, idempotent submit, and the fixed dual write.

The API runs as a real uvicorn process; a worker is started only by the tests that need one, so
the others can look at tasks (and their jobs in Redis) while they wait.
"""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import redis
from rq import Queue
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

from tasklab_cli.processes import Phase
from tests.phase3.conftest import FAST_RECOVERY, WorkerFactory
from tests.support import submit, text, wait_for, wait_for_status


@pytest.fixture(scope="module")
def env(phase_env: dict[str, str]) -> dict[str, str]:
    # A 30 s wait before each retry keeps a flaky task `retrying` for as long as a test needs.
    return {**phase_env, **FAST_RECOVERY, "RETRY_BACKOFF_BASE_SECONDS": "30", "RETRY_BACKOFF_CAP_SECONDS": "30"}


#: A known gap of phase 5 (reported, not yet fixed): RQ's SimpleWorker.kill_horse() is a no-op,
#: so the stop-job command the API sends on cancel reaches the pool process and does nothing.
#: The cancelled attempt runs to its end; its result is dropped and the task stays `cancelled`,
#: but the process stays busy and RQ records the job as finished, not stopped.
def job_status(redis_client: redis.Redis, task_id: str) -> str | None:
    raw = redis_client.hget(f"rq:job:{task_id}", "status")
    return text(raw) if raw is not None else None


# ---------------------------------------------------------------------------------------------
# POST /tasks/{id}/retry


def test_retry_puts_a_failed_task_back_in_the_queue_with_fresh_attempts(client: httpx.Client, workers: WorkerFactory) -> None:
    workers()
    task = submit(client, "flaky", {"fail_times": 1, "permanent": True})
    failed = wait_for_status(client, task["id"])
    assert (failed["status"], failed["attempts"]) == ("failed", 1)

    response = client.post(f"/tasks/{task['id']}/retry")

    assert response.status_code == 202
    assert (response.json()["status"], response.json()["attempts"]) == ("pending", 0)

    def ran_again() -> dict[str, object] | None:
        current = client.get(f"/tasks/{task['id']}").json()
        return current if current["status"] == "failed" and current["completed_at"] != failed["completed_at"] else None

    rerun = wait_for(ran_again, message="the dead letter to run again")
    assert rerun["attempts"] == 1  # it ran again (and, its error being permanent, failed again)


@pytest.mark.parametrize("state", ["pending", "completed", "cancelled"])
def test_retry_of_a_task_that_is_not_failed_is_409(client: httpx.Client, workers: WorkerFactory, state: str) -> None:
    task = submit(client, "noop")
    if state == "completed":
        workers()
        wait_for_status(client, task["id"], ["completed"])
    if state == "cancelled":
        client.post(f"/tasks/{task['id']}/cancel")

    response = client.post(f"/tasks/{task['id']}/retry")

    assert response.status_code == 409
    assert state in response.json()["detail"]


def test_retry_of_an_unknown_task_is_404(client: httpx.Client) -> None:
    assert client.post(f"/tasks/{uuid.uuid4()}/retry").status_code == 404


# ---------------------------------------------------------------------------------------------
# POST /tasks/{id}/cancel


def test_cancel_of_a_pending_task_removes_its_job(client: httpx.Client, redis_client: redis.Redis, queue_name: str) -> None:
    task = submit(client, "noop")
    assert redis_client.lpos(f"rq:queue:{queue_name}", task["id"]) is not None

    response = client.post(f"/tasks/{task['id']}/cancel")

    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    assert redis_client.lpos(f"rq:queue:{queue_name}", task["id"]) is None
    assert not redis_client.exists(f"rq:job:{task['id']}")


def test_cancel_of_a_retrying_task_removes_its_scheduled_retry(
    client: httpx.Client, workers: WorkerFactory, redis_client: redis.Redis, queue_name: str
) -> None:
    workers()
    task = submit(client, "flaky", {"fail_times": 3})
    wait_for_status(client, task["id"], ["retrying"])
    wait_for(
        lambda: redis_client.zscore(f"rq:scheduled:{queue_name}", task["id"]) is not None,
        timeout=5,
        message="the retry scheduled",
    )

    response = client.post(f"/tasks/{task['id']}/cancel")

    assert (response.status_code, response.json()["status"]) == (200, "cancelled")
    assert redis_client.zscore(f"rq:scheduled:{queue_name}", task["id"]) is None
    assert response.json()["attempts"] == 1


def test_cancel_of_a_running_task_stops_its_attempt(
    client: httpx.Client, workers: WorkerFactory, redis_client: redis.Redis
) -> None:
    """The worker stops the attempt (phases 3 and 4 kill its work horse, phase 5's pool process
    interrupts the job it runs); RQ records the job as stopped, not failed, and does not retry it."""
    workers()
    task = submit(client, "compute", {"n": 50_000_000})
    wait_for_status(client, task["id"], ["running"])

    response = client.post(f"/tasks/{task['id']}/cancel")

    assert (response.status_code, response.json()["status"]) == (200, "cancelled")
    wait_for(lambda: job_status(redis_client, task["id"]) == JobStatus.STOPPED.value, timeout=5, message="job stopped")
    final = client.get(f"/tasks/{task['id']}").json()
    assert (final["status"], final["result"], final["attempts"]) == ("cancelled", None, 1)


@pytest.mark.parametrize("ending", ["completed", "cancelled"])
def test_cancel_of_a_task_that_has_ended_is_409(client: httpx.Client, workers: WorkerFactory, ending: str) -> None:
    task = submit(client, "noop")
    if ending == "completed":
        workers()
        wait_for_status(client, task["id"], ["completed"])
    else:
        client.post(f"/tasks/{task['id']}/cancel")

    response = client.post(f"/tasks/{task['id']}/cancel")

    assert response.status_code == 409
    assert ending in response.json()["detail"]


def test_a_cancelled_task_whose_job_escaped_never_runs(
    client: httpx.Client, workers: WorkerFactory, redis_client: redis.Redis, recovery_phase: Phase, queue_name: str
) -> None:
    """Even if its job is enqueued again (a race, a reconciler), a cancelled task cannot be claimed."""
    task = submit(client, "noop")
    client.post(f"/tasks/{task['id']}/cancel")
    queue = Queue(queue_name, connection=redis_client, serializer=JSONSerializer)
    queue.enqueue_call(f"{recovery_phase.package}.jobs.process_task", args=(task["id"],), job_id=task["id"])
    workers()

    wait_for(lambda: job_status(redis_client, task["id"]) == JobStatus.FINISHED.value, message="the stray job to run")
    assert client.get(f"/tasks/{task['id']}").json()["status"] == "cancelled"
    assert Job.fetch(task["id"], connection=redis_client, serializer=JSONSerializer).return_value() is None


# ---------------------------------------------------------------------------------------------
# Idempotency-Key


def test_same_idempotency_key_returns_the_same_task_with_200(client: httpx.Client) -> None:
    body = {"task_type": "fibonacci", "payload": {"n": 10}}
    first = client.post("/tasks", json=body, headers={"Idempotency-Key": "order-42"})

    again = client.post("/tasks", json=body, headers={"Idempotency-Key": "order-42"})

    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["location"] == f"/tasks/{first.json()['id']}"
    assert client.get("/tasks").json()["total"] == 1


def test_same_idempotency_key_with_a_different_body_is_409(client: httpx.Client) -> None:
    client.post("/tasks", json={"task_type": "fibonacci", "payload": {"n": 10}}, headers={"Idempotency-Key": "order-43"})

    response = client.post(
        "/tasks", json={"task_type": "fibonacci", "payload": {"n": 11}}, headers={"Idempotency-Key": "order-43"}
    )

    assert response.status_code == 409
    assert "different body" in response.json()["detail"]
    assert client.get("/tasks").json()["total"] == 1


def test_defaults_filled_in_count_as_the_same_body(client: httpx.Client) -> None:
    """`{}` and `{"n": 1000000}` are the same compute request once validated."""
    first = client.post("/tasks", json={"task_type": "compute", "payload": {}}, headers={"Idempotency-Key": "k"})

    again = client.post(
        "/tasks", json={"task_type": "compute", "payload": {"n": 1_000_000}, "priority": 3}, headers={"Idempotency-Key": "k"}
    )

    assert (again.status_code, again.json()["id"]) == (200, first.json()["id"])


def test_concurrent_requests_with_one_key_create_one_task(client: httpx.Client) -> None:
    body = {"task_type": "noop", "payload": {}}

    def post(_: int) -> httpx.Response:
        return client.post("/tasks", json=body, headers={"Idempotency-Key": "burst"})

    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(post, range(8)))

    assert sorted(r.status_code for r in responses) == [200] * 7 + [202]
    assert len({r.json()["id"] for r in responses}) == 1
    assert client.get("/tasks").json()["total"] == 1


def test_without_a_key_every_post_is_a_new_task(client: httpx.Client) -> None:
    submit(client, "noop")
    submit(client, "noop")

    assert client.get("/tasks").json()["total"] == 2


def test_an_idempotency_key_over_255_characters_is_422(client: httpx.Client) -> None:
    response = client.post("/tasks", json={"task_type": "noop", "payload": {}}, headers={"Idempotency-Key": "k" * 256})

    assert response.status_code == 422
