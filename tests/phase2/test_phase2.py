"""Phase 2's lesson: the API only enqueues; separate worker processes run the tasks.

Every test here runs the real thing: a uvicorn process for the API, ``python -m
phase2_queue.worker`` processes, a private ``redis-server`` and a real database.
"""

from __future__ import annotations

import json
import time
import zlib
from collections.abc import Callable, Iterator

import httpx
import pytest
import redis
from rq import Queue
from sqlalchemy.engine import Engine

from phase2_queue.jobs import QUEUE_NAME
from shared.redis_server import PrivateRedis
from tasklab_cli.processes import PHASES, ApiProcess, ManagedProcess, start_api, start_worker
from tests.support import submit, wait_for, wait_for_status

PHASE2 = PHASES[2]
REDIS_DOWN_ANSWER_BUDGET_SECONDS = 2.0


@pytest.fixture(scope="module")
def api(phase_env: dict[str, str], db_engine: Engine) -> Iterator[ApiProcess]:
    server = start_api(PHASE2, phase_env)
    yield server
    server.stop()


@pytest.fixture
def client(api: ApiProcess, empty_store: Engine, redis_client: redis.Redis) -> Iterator[httpx.Client]:
    redis_client.flushdb()  # no job left over from another test
    with httpx.Client(base_url=api.base_url, timeout=10) as http:
        yield http


@pytest.fixture
def workers(phase_env: dict[str, str]) -> Iterator[Callable[..., ManagedProcess]]:
    """Start worker processes on demand; every one is stopped after the test."""
    started: list[ManagedProcess] = []

    def start(*args: str) -> ManagedProcess:
        worker = start_worker(PHASE2, phase_env, *args, index=len(started) + 1)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


def test_task_waits_pending_in_the_queue_until_a_worker_starts(
    client: httpx.Client, redis_client: redis.Redis, workers: Callable[..., ManagedProcess]
) -> None:
    """With no worker the task stays `pending`, its job queued in Redis; a worker then runs it."""
    task = submit(client, "fibonacci", {"n": 10})

    queue = Queue(QUEUE_NAME, connection=redis_client)
    assert queue.job_ids == [task["id"]]  # the job id *is* the task id
    assert client.get(f"/tasks/{task['id']}").json()["status"] == "pending"

    workers()
    done = wait_for_status(client, task["id"])

    assert (done["status"], done["result"]) == ("completed", 55)
    assert queue.count == 0


def test_the_worker_is_a_separate_process_named_on_the_task(client: httpx.Client, workers: Callable[..., ManagedProcess]) -> None:
    workers("--name", "worker-under-test")
    task = submit(client, "compute", {"n": 1000})

    done = wait_for_status(client, task["id"])

    assert done["result"] == 499_500
    assert done["worker"] == "worker-under-test"


def test_job_carries_only_the_task_id_as_json(client: httpx.Client, redis_client: redis.Redis) -> None:
    """No pickle crosses Redis: the job's data is JSON naming a fixed function and one id."""
    task = submit(client, "text_processing", {"text": "hello"})

    raw = redis_client.hget(f"rq:job:{task['id']}", "data")
    assert isinstance(raw, bytes)
    function, instance, args, kwargs = json.loads(zlib.decompress(raw))

    assert function == "phase2_queue.jobs.process_task"
    assert (instance, args, kwargs) == (None, [task["id"]], {})


def test_two_workers_drain_the_queue_running_each_task_once(client: httpx.Client, workers: Callable[..., ManagedProcess]) -> None:
    ids = [submit(client, "noop")["id"] for _ in range(40)]
    workers("--name", "w1")
    workers("--name", "w2")

    wait_for(
        lambda: client.get("/tasks", params={"status": "completed"}).json()["total"] == 40,
        timeout=60,
        message="40 tasks completed",
    )

    tasks = [client.get(f"/tasks/{task_id}").json() for task_id in ids]
    assert all(t["attempts"] == 1 for t in tasks)
    assert {t["worker"] for t in tasks} <= {"w1", "w2"}


def test_burst_worker_exits_once_the_queue_is_empty(client: httpx.Client, workers: Callable[..., ManagedProcess]) -> None:
    task = submit(client, "noop")

    worker = workers("--burst")

    assert worker.process.wait(timeout=30) == 0
    assert client.get(f"/tasks/{task['id']}").json()["status"] == "completed"


# ---------------------------------------------------------------------------------------------
# Redis down: the API must say so quickly, and leave nothing pending.


@pytest.fixture
def own_redis() -> Iterator[PrivateRedis]:
    """A Redis this test may kill without disturbing the others."""
    server = PrivateRedis().start()
    yield server
    server.cleanup()


@pytest.fixture
def api_on_own_redis(phase_env: dict[str, str], own_redis: PrivateRedis, empty_store: Engine) -> Iterator[httpx.Client]:
    server = start_api(PHASE2, {**phase_env, "REDIS_URL": own_redis.url})
    with httpx.Client(base_url=server.base_url, timeout=10) as http:
        yield http
    server.stop()


@pytest.mark.alone  # a timing bound
def test_redis_down_answers_503_within_2_seconds_and_leaves_nothing_pending(
    api_on_own_redis: httpx.Client, own_redis: PrivateRedis
) -> None:
    own_redis.kill()

    started = time.monotonic()
    response = api_on_own_redis.post("/tasks", json={"task_type": "noop", "payload": {}})
    elapsed = time.monotonic() - started

    assert response.status_code == 503
    assert "queue unreachable" in response.json()["detail"]
    assert elapsed < REDIS_DOWN_ANSWER_BUDGET_SECONDS
    assert api_on_own_redis.get("/tasks", params={"status": "pending"}).json()["total"] == 0
    [failed] = api_on_own_redis.get("/tasks", params={"status": "failed"}).json()["items"]
    assert "Redis unreachable" in failed["error"]


def test_ready_is_503_naming_redis_while_it_is_down_and_200_once_back(
    api_on_own_redis: httpx.Client, own_redis: PrivateRedis
) -> None:
    own_redis.kill()

    down = api_on_own_redis.get("/ready")

    assert down.status_code == 503
    assert down.json()["checks"]["redis"].startswith("down")
    assert down.json()["checks"]["database"] == "ok"

    own_redis.start()
    assert wait_for(lambda: api_on_own_redis.get("/ready").status_code == 200, message="/ready to recover")
