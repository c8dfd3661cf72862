"""Five priority levels: highest first, FIFO within a level, and no level starved.

The aging rule is checked on its own against a real Redis (``promote_overdue``), then end to end
with the real API and a real pool: a backlog drains in priority order, and a priority-1 task
submitted into a saturating stream of priority-5 work still starts within its bound.
"""

from __future__ import annotations

import random
import time
from datetime import datetime

import httpx
import pytest
import redis
from rq import Queue

from phase5_scaling.scaling.jobs import PRIORITIES, QUEUE_NAMES, make_queues
from phase5_scaling.scaling.priorities import promote_overdue
from tests.phase5.conftest import PoolFactory
from tests.support import submit, text, wait_for

BOUNDS = {1: 60.0, 2: 30.0, 3: 15.0, 4: 5.0}


# ---------------------------------------------------------------------------------------------
# The aging rule, on Redis alone


@pytest.fixture
def queues(redis_client: redis.Redis) -> list[Queue]:
    redis_client.flushdb()
    return make_queues(redis_client)


def enqueue_noop(queue: Queue, job_id: str) -> None:
    queue.enqueue_call("phase5_scaling.scaling.jobs.process_task", args=(job_id,), job_id=job_id)


def queued_ids(redis_client: redis.Redis, name: str) -> list[str]:
    return [text(raw) for raw in redis_client.lrange(f"rq:queue:{name}", 0, -1)]


def test_a_job_waiting_past_its_bound_moves_to_the_front_of_the_top_queue(queues: list[Queue], redis_client: redis.Redis) -> None:
    top, level1 = queues[0], queues[-1]
    enqueue_noop(top, "urgent")
    enqueue_noop(level1, "patient")

    promoted = promote_overdue(redis_client, queues, PRIORITIES, BOUNDS, now=time.time() + BOUNDS[1] + 1)

    assert [(p.job_id, p.from_priority) for p in promoted] == [("patient", 1)]
    assert queued_ids(redis_client, top.name) == ["patient", "urgent"]
    assert queued_ids(redis_client, level1.name) == []
    assert redis_client.hget("rq:job:patient", "origin") == top.name.encode()  # the reconciler looks there


def test_a_job_within_its_bound_keeps_its_place(queues: list[Queue], redis_client: redis.Redis) -> None:
    enqueue_noop(queues[-1], "patient")

    promoted = promote_overdue(redis_client, queues, PRIORITIES, BOUNDS, now=time.time() + BOUNDS[1] - 5)

    assert promoted == []
    assert queued_ids(redis_client, queues[-1].name) == ["patient"]


def test_each_level_has_its_own_bound(queues: list[Queue], redis_client: redis.Redis) -> None:
    """After 10 s a level-4 job (bound 5 s) is overdue, a level-3 one (bound 15 s) is not."""
    level4, level3 = queues[1], queues[2]
    enqueue_noop(level4, "four")
    enqueue_noop(level3, "three")

    promoted = promote_overdue(redis_client, queues, PRIORITIES, BOUNDS, now=time.time() + 10)

    assert [p.job_id for p in promoted] == ["four"]


def test_every_overdue_job_of_a_level_moves_oldest_in_front(queues: list[Queue], redis_client: redis.Redis) -> None:
    for job_id in ("a", "b", "c"):
        enqueue_noop(queues[-1], job_id)

    promote_overdue(redis_client, queues, PRIORITIES, BOUNDS, now=time.time() + BOUNDS[1] + 1)

    # Each is pushed to the very front in turn: the last one moved is taken first. All three
    # now run before any new arrival; their order among themselves is the reverse of arrival.
    assert sorted(queued_ids(redis_client, queues[0].name)) == ["a", "b", "c"]


# ---------------------------------------------------------------------------------------------
# End to end: the real API and pool


def started_at(client: httpx.Client, task_id: str) -> datetime:
    return datetime.fromisoformat(client.get(f"/tasks/{task_id}").json()["started_at"])


def test_the_api_puts_each_task_on_its_priority_queue(client: httpx.Client, redis_client: redis.Redis) -> None:
    ids = {priority: submit(client, "noop", priority=priority)["id"] for priority in PRIORITIES}

    for priority, name in zip(PRIORITIES, QUEUE_NAMES, strict=True):
        assert queued_ids(redis_client, name) == [ids[priority]]


def test_a_backlog_starts_in_priority_order_fifo_within_a_level(client: httpx.Client, pools: PoolFactory) -> None:
    """100 tasks of random priorities, queued with no worker; then one process drains them."""
    rng = random.Random(5)
    tasks = [submit(client, "noop", priority=rng.randint(1, 5)) for _ in range(100)]

    pools("--processes", "1", "--no-reconciler")
    wait_for(
        lambda: client.get("/tasks", params={"status": "completed", "limit": 1}).json()["total"] == 100,
        timeout=60,
        message="all 100 completed",
    )

    order = sorted(tasks, key=lambda task: started_at(client, task["id"]))
    expected = sorted(tasks, key=lambda task: (-task["priority"], task["created_at"]))
    assert [task["id"] for task in order] == [task["id"] for task in expected]


@pytest.mark.alone  # a timing bound
def test_a_priority_1_task_starts_within_its_bound_under_a_stream_of_priority_5(client: httpx.Client, pools: PoolFactory) -> None:
    """The pool stays saturated by priority-5 work; the priority-1 task must not wait for ever."""
    bound = 2.0
    bounds = f'{{"1": {bound}, "2": 2, "3": 2, "4": 1}}'
    stream = ("compute", {"n": 2_000_000})  # tens of milliseconds each
    pools("--processes", "1", extra_env={"PRIORITY_MAX_WAIT_SECONDS": bounds, "AGING_INTERVAL_SECONDS": "0.2"})
    for _ in range(40):
        submit(client, *stream, priority=5)
    # Measured from a saturated pool, not from its start-up (importing a worker takes seconds on a
    # loaded machine, and no bound can include that).
    wait_for(
        lambda: client.get("/tasks", params={"status": "completed", "limit": 1}).json()["total"] >= 1,
        timeout=60,
        message="the pool working through the stream",
    )

    low = submit(client, "noop", priority=1)
    deadline = time.monotonic() + 20
    while client.get(f"/tasks/{low['id']}").json()["status"] == "pending":
        assert time.monotonic() < deadline, "the priority-1 task never started"
        submit(client, *stream, priority=5)  # keep the top queue from ever running dry

    waited = (started_at(client, low["id"]) - datetime.fromisoformat(low["created_at"])).total_seconds()
    backlog = client.get("/tasks", params={"status": "pending", "limit": 1}).json()["total"]
    assert backlog > 0, "the stream must still be waiting when the low task starts, or nothing was proven"
    assert waited < bound + 2.0, f"waited {waited:.1f} s with a bound of {bound} s"
