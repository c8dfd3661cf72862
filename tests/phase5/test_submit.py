"""Phase 5's submit: the submits that arrive together are stored and queued together.

The batcher is tested on its own with a real event loop and a real worker thread (what it
groups, and how a failure or a hang-up spreads), then through the real API: many concurrent
clients, each answered 202 only for a task that is in the database and on its queue.
"""

from __future__ import annotations

import asyncio
import threading
import uuid

import httpx
import redis
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from phase5_scaling.scaling.jobs import QUEUE_NAMES
from phase5_scaling.scaling.submit import SubmitBatcher
from shared.models import Task
from shared.tasks import TaskType
from tasklab_cli.processes import ApiProcess

#: How long a test waits for the batcher to reach a state; it normally takes microseconds.
STEP_TIMEOUT_SECONDS = 5.0


def a_task() -> Task:
    return Task(task_type=TaskType.NOOP, payload={})


class RecordingWrite:
    """A batch writer that records each batch and can hold the first one, as a slow commit would."""

    def __init__(self, *, hold_first: bool = False, fail: Exception | None = None) -> None:
        self.batches: list[list[uuid.UUID]] = []
        self.first_started = threading.Event()
        self.release_first = threading.Event()
        if not hold_first:
            self.release_first.set()
        self.fail = fail

    def __call__(self, tasks: list[Task]) -> None:
        self.batches.append([task.id for task in tasks])
        if len(self.batches) == 1:
            self.first_started.set()
            assert self.release_first.wait(STEP_TIMEOUT_SECONDS), "the test never released the first batch"
        if self.fail is not None:
            raise self.fail


async def wait_until(event: threading.Event) -> None:
    assert await asyncio.to_thread(event.wait, STEP_TIMEOUT_SECONDS)


async def ten_submits_during_a_held_write(batcher: SubmitBatcher[Task], write: RecordingWrite) -> None:
    """One submit starts a write that the test holds; ten more arrive meanwhile; then it is released."""
    first = asyncio.create_task(batcher.submit(a_task()))
    await wait_until(write.first_started)
    waiting = [asyncio.create_task(batcher.submit(a_task())) for _ in range(10)]
    await asyncio.sleep(0)  # let every submit hand in its task
    write.release_first.set()
    await asyncio.gather(first, *waiting)


def test_a_lone_submit_is_written_at_once_and_alone() -> None:
    write = RecordingWrite()

    async def scenario() -> None:
        await SubmitBatcher(write, max_batch_size=256).submit(a_task())

    asyncio.run(scenario())
    assert [len(batch) for batch in write.batches] == [1]


def test_submits_arriving_during_a_write_share_the_next_batch() -> None:
    """Given a batch being written, when ten more submits arrive, then one transaction stores all ten."""
    write = RecordingWrite(hold_first=True)

    asyncio.run(ten_submits_during_a_held_write(SubmitBatcher(write, max_batch_size=256), write))
    assert [len(batch) for batch in write.batches] == [1, 10]


def test_a_batch_holds_at_most_submit_batch_max_tasks() -> None:
    write = RecordingWrite(hold_first=True)

    asyncio.run(ten_submits_during_a_held_write(SubmitBatcher(write, max_batch_size=4), write))
    assert [len(batch) for batch in write.batches] == [1, 4, 4, 2]


def test_a_batch_that_fails_fails_each_of_its_submits_and_the_next_one_is_written() -> None:
    outage = ConnectionError("database unreachable")
    write = RecordingWrite(fail=outage)

    async def scenario() -> list[BaseException | None]:
        batcher = SubmitBatcher(write, max_batch_size=256)
        results = await asyncio.gather(*(batcher.submit(a_task()) for _ in range(3)), return_exceptions=True)
        write.fail = None
        await batcher.submit(a_task())  # the batcher is not stuck after a failure
        return list(results)

    results = asyncio.run(scenario())
    assert results and all(result is outage for result in results)
    assert len(write.batches[-1]) == 1


def test_a_client_that_hangs_up_does_not_take_its_task_out_of_the_batch() -> None:
    write = RecordingWrite(hold_first=True)
    task = a_task()

    async def scenario() -> None:
        batcher = SubmitBatcher(write, max_batch_size=256)
        hung_up = asyncio.create_task(batcher.submit(task))
        await wait_until(write.first_started)
        hung_up.cancel()
        write.release_first.set()
        await batcher.drain()

    asyncio.run(scenario())
    assert write.batches == [[task.id]]


def queued_jobs(redis_client: redis.Redis) -> int:
    return sum(int(redis_client.llen(f"rq:queue:{name}")) for name in QUEUE_NAMES)


def test_concurrent_submits_are_each_stored_and_queued_before_their_202(
    api: ApiProcess, empty_store: Engine, redis_client: redis.Redis
) -> None:
    """64 clients at once, no worker: every 202 names a distinct task that is stored and queued."""
    redis_client.flushdb()

    async def submit_all() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=api.base_url, timeout=10) as http:
            bodies = [{"task_type": "noop", "payload": {}, "priority": 1 + n % 5} for n in range(64)]
            return await asyncio.gather(*(http.post("/tasks", json=body) for body in bodies))

    responses = asyncio.run(submit_all())
    assert [response.status_code for response in responses] == [202] * 64
    ids = {response.json()["id"] for response in responses}
    assert len(ids) == 64
    with Session(empty_store) as session:
        assert session.exec(select(func.count()).select_from(Task)).one() == 64
    assert queued_jobs(redis_client) == 64


def test_a_submit_with_an_idempotency_key_is_answered_once_per_key(api: ApiProcess, empty_store: Engine) -> None:
    """The keyed submit takes phase 4's path: the repeat gets the first task back, 200."""
    with httpx.Client(base_url=api.base_url, timeout=10) as http:
        body = {"task_type": "noop", "payload": {}}
        first = http.post("/tasks", json=body, headers={"Idempotency-Key": "order-7"})
        again = http.post("/tasks", json=body, headers={"Idempotency-Key": "order-7"})
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json()["id"] == first.json()["id"]
