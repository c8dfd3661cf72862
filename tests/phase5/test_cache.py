"""The status cache never serves a status older than the database's, and Redis down is only a miss.

Cache only what cannot change (``completed``, ``cancelled``): the rule is checked directly, then
watched over 500 real task lifecycles with a real pool running them.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator

import httpx
import pytest
import redis
from sqlalchemy.engine import Engine
from sqlmodel import Session

from phase5_scaling.scaling.cache import KEY_PREFIX, StatusCache
from shared.models import Task, TaskRead, TaskStatus, utc_now
from shared.redis_server import PrivateRedis, connect_redis, free_port
from shared.tasks import TaskType
from tasklab_cli.processes import PHASES, ApiProcess, ManagedProcess, start_worker
from tests.phase3.conftest import FAST_RECOVERY
from tests.support import submit, wait_for, wait_for_status

PHASE5 = PHASES[5]

#: The order a task moves in: a read may lag behind the database but never go back in it.
LIFECYCLE = {"pending": 0, "retrying": 1, "running": 1, "completed": 2, "failed": 2, "cancelled": 2}


def a_task(status: TaskStatus) -> TaskRead:
    now = utc_now()
    return TaskRead(
        id=uuid.uuid4(), task_type=TaskType.NOOP, payload={}, priority=3, status=status, attempts=1, progress=0, created_at=now
    )


@pytest.mark.parametrize("status", [TaskStatus.PENDING, TaskStatus.RUNNING, TaskStatus.RETRYING, TaskStatus.FAILED])
def test_a_task_that_can_still_change_is_never_cached(redis_client: redis.Redis, status: TaskStatus) -> None:
    cache = StatusCache(redis_client, ttl_seconds=60)
    task = a_task(status)

    cache.remember(task)

    assert cache.get(task.id) is None


@pytest.mark.parametrize("status", [TaskStatus.COMPLETED, TaskStatus.CANCELLED])
def test_a_task_that_cannot_change_is_served_from_redis(redis_client: redis.Redis, status: TaskStatus) -> None:
    cache = StatusCache(redis_client, ttl_seconds=60)
    task = a_task(status)

    cache.remember(task)

    assert cache.get(task.id) == task
    assert 0 < redis_client.ttl(f"{KEY_PREFIX}{task.id}") <= 60


def test_a_cache_whose_redis_is_gone_is_a_miss_not_an_error() -> None:
    nobody = connect_redis(f"redis://127.0.0.1:{free_port()}/0", timeout_seconds=0.2)  # the API's fail-fast client
    cache = StatusCache(nobody, ttl_seconds=60)
    task = a_task(TaskStatus.COMPLETED)

    cache.remember(task)  # no exception

    assert cache.get(task.id) is None


# ---------------------------------------------------------------------------------------------
# With the real API and pool


@pytest.fixture(scope="module")
def own_redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis().start()
    yield server
    server.cleanup()


@pytest.fixture(scope="module")
def env(phase_env: dict[str, str], own_redis: PrivateRedis, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return {**phase_env, **FAST_RECOVERY, "REDIS_URL": own_redis.url, "METRICS_DIR": str(tmp_path_factory.mktemp("metrics"))}


@pytest.fixture
def client(api: ApiProcess, empty_store: Engine) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api.base_url, timeout=10) as http:
        yield http


@pytest.fixture
def pool(env: dict[str, str]) -> Iterator[ManagedProcess]:
    process = start_worker(PHASE5, env, "--processes", "2")
    yield process
    process.stop()


def database_status(engine: Engine, task_id: str) -> str:
    with Session(engine) as session:
        task = session.get(Task, uuid.UUID(task_id))
        assert task is not None
        return str(task.status)


@pytest.mark.parametrize(
    "lifecycles",
    # Enough reads mid-lifecycle to catch a stale cache in every run; the chapter's 500 in the slow set.
    [pytest.param(150, id="150-lifecycles"), pytest.param(500, id="500-lifecycles", marks=pytest.mark.slow)],
)
def test_no_read_is_ever_older_than_the_database_over_many_lifecycles(
    client: httpx.Client, pool: ManagedProcess, empty_store: Engine, lifecycles: int
) -> None:
    rng = random.Random(7)
    kinds = [("noop", {}), ("fibonacci", {"n": 5})]
    ids: list[str] = []
    reads = 0
    while True:
        # Submitting while reading: however fast the pool is, the reads meet tasks mid-lifecycle.
        ids += [submit(client, *rng.choice(kinds))["id"] for _ in range(min(10, lifecycles - len(ids)))]
        unfinished = 0
        for task_id in rng.sample(ids, min(50, len(ids))):
            committed = database_status(empty_store, task_id)  # what the database has, before the read
            served = client.get(f"/tasks/{task_id}").json()["status"]
            reads += 1
            assert LIFECYCLE[served] >= LIFECYCLE[committed], f"{task_id}: served {served} after the database had {committed}"
            unfinished += committed not in ("completed", "failed", "cancelled")
        if (
            len(ids) == lifecycles
            and unfinished == 0
            and client.get("/tasks", params={"status": "completed", "limit": 1}).json()["total"] == len(ids)
        ):
            break
        assert reads < 50_000, "the tasks never finished"
    assert reads >= lifecycles


def test_with_redis_stopped_a_read_still_answers_from_the_database(
    client: httpx.Client, pool: ManagedProcess, own_redis: PrivateRedis
) -> None:
    done = wait_for_status(client, submit(client, "fibonacci", {"n": 10})["id"])
    assert client.get(f"/tasks/{done['id']}").json() == done  # now cached

    own_redis.kill()
    try:
        response = client.get(f"/tasks/{done['id']}")
    finally:
        own_redis.start(wipe=False)

    assert response.status_code == 200
    assert response.json() == done
    wait_for(lambda: client.get("/ready").status_code == 200, message="Redis back")
