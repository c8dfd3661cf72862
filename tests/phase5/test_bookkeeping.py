"""A pool process's Redis bookkeeping: RQ's writes in fewer round trips, and nothing left behind.

The pool runs for real (``worker --burst``, its processes, a real Redis); what is checked is
what Redis holds and which commands it served, not timings.
"""

from __future__ import annotations

import logging
import uuid

import httpx
import pytest
import redis
from rq import Queue
from rq.job import Job

from phase5_scaling.recovery.leases import LeaseKeeper, lease_key
from phase5_scaling.scaling.bookkeeping import finishes_in_one_trip
from phase5_scaling.scaling.jobs import queue_name
from phase5_scaling.scaling.pool import PoolWorker, build_pool_worker
from phase5_scaling.scaling.settings import load_settings
from tests.phase5.conftest import PoolFactory
from tests.support import submit, wait_for

TASKS = 40


def command_calls(redis_client: redis.Redis) -> dict[str, int]:
    """How many times Redis ran each command since its statistics were last reset."""
    stats = redis_client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(entry["calls"]) for name, entry in stats.items()}


def drain_with_a_burst_pool(client: httpx.Client, pools: PoolFactory, redis_client: redis.Redis) -> dict[str, int]:
    """Queue TASKS no-op tasks, drain them with one burst pool process, return Redis's command counts."""
    ids = [submit(client, "noop", priority=3)["id"] for _ in range(TASKS)]
    redis_client.config_resetstat()
    pool = pools("--processes", "1", "--burst", "--no-reconciler")
    wait_for(lambda: not pool.alive(), timeout=30, message="the burst pool exits")
    assert pool.process.returncode == 0, pool.log_tail()
    statuses = {client.get(f"/tasks/{task_id}").json()["status"] for task_id in ids}
    assert statuses == {"completed"}
    return command_calls(redis_client)


def test_a_drained_pool_leaves_no_job_execution_or_registry_entry_in_redis(
    client: httpx.Client, pools: PoolFactory, redis_client: redis.Redis
) -> None:
    """What RQ's own success path deletes, the one-trip path deletes too (results live in the database)."""
    drain_with_a_burst_pool(client, pools, redis_client)
    leftovers = [key.decode() for key in redis_client.scan_iter("rq:*") if key.decode().startswith(("rq:job:", "rq:execution"))]
    assert leftovers == []
    started = [key for key in redis_client.scan_iter("rq:wip:*") if redis_client.zcard(key)]
    assert started == []
    assert list(redis_client.scan_iter("tasklab:lease:*")) == []


def test_a_pool_process_takes_each_job_with_one_script_call_and_never_watches_for_dependents(
    client: httpx.Client, pools: PoolFactory, redis_client: redis.Redis
) -> None:
    """RQ polled each empty level with its own LPOP, read the job's hash in another round trip,
    and read every job's dependents before finishing it."""
    calls = drain_with_a_burst_pool(client, pools, redis_client)
    assert calls.get("evalsha", 0) >= TASKS  # one per job (the supervisor's threads run scripts too)
    assert calls.get("blpop", 0) == 0  # while jobs wait, RQ's own pop never runs
    assert calls.get("watch", 0) == 0
    assert calls.get("smembers", 0) < TASKS // 2  # start-up and the registries' cleaning; RQ sent one per job


def test_a_job_asking_for_its_result_in_redis_takes_rqs_own_path(redis_client: redis.Redis) -> None:
    ordinary = Job.create("phase5_scaling.scaling.jobs.process_task", args=("x",), connection=redis_client, result_ttl=0)
    keeps_result = Job.create("phase5_scaling.scaling.jobs.process_task", args=("x",), connection=redis_client, result_ttl=60)
    assert finishes_in_one_trip(ordinary, default_result_ttl=500)
    assert not finishes_in_one_trip(keeps_result, default_result_ttl=500)


def test_the_lease_keeper_holds_a_lease_while_the_attempt_runs_and_removes_it_after(redis_client: redis.Redis) -> None:
    keeper = LeaseKeeper(redis_client, ttl_seconds=30)
    task_id = uuid.uuid4()
    with keeper.hold(task_id, holder="pool-1/123"):
        assert redis_client.get(lease_key(task_id)) == b"pool-1/123"
        assert 0 < int(redis_client.ttl(lease_key(task_id))) <= 30
    assert redis_client.exists(lease_key(task_id)) == 0


def test_the_lease_keeper_renews_every_lease_it_holds_from_one_thread(redis_client: redis.Redis) -> None:
    """Leases of 3 s: each one's TTL runs down, then is set back up while it is held (every TTL/3)."""
    keeper = LeaseKeeper(redis_client, ttl_seconds=3)
    first, second = uuid.uuid4(), uuid.uuid4()
    with keeper.hold(first, holder="pool-1/1"), keeper.hold(second, holder="pool-1/1"):
        for key in (lease_key(first), lease_key(second)):

            def ttl_ms(key: str = key) -> int:
                return int(redis_client.pttl(key))

            wait_for(lambda: 0 < ttl_ms() < 2_500, timeout=3, message=f"{key} runs down")
            wait_for(lambda: ttl_ms() > 2_700, timeout=3, message=f"{key} is renewed")


def test_a_lease_set_in_the_jobs_start_transaction_is_not_set_again_when_the_attempt_holds_it(
    redis_client: redis.Redis,
) -> None:
    """The pool sets the lease with the job's start (one round trip less); holding it sends no SET."""
    keeper = LeaseKeeper(redis_client, ttl_seconds=30, release_later=True)
    task_id = uuid.uuid4()
    with redis_client.pipeline() as start_of_job:
        keeper.set_in(start_of_job, task_id, holder="pool-1/1")
        start_of_job.execute()
    assert redis_client.get(lease_key(task_id)) == b"pool-1/1"

    redis_client.config_resetstat()
    with keeper.hold(task_id, holder="pool-1/1"):
        assert command_calls(redis_client).get("set", 0) == 0

    assert keeper.take_released() == [lease_key(task_id)]


def test_a_lease_set_ahead_for_a_task_that_was_not_claimed_is_handed_back_for_deletion(redis_client: redis.Redis) -> None:
    """A job whose task was cancelled or finished meanwhile never holds its lease: it must not linger."""
    keeper = LeaseKeeper(redis_client, ttl_seconds=30, release_later=True)
    task_id = uuid.uuid4()
    with redis_client.pipeline() as start_of_job:
        keeper.set_in(start_of_job, task_id, holder="pool-1/1")
        start_of_job.execute()

    assert keeper.take_released() == [lease_key(task_id)]
    assert keeper.take_released() == []


# -- prefetch: the finishing transaction pops the next job ----------------------------------------


def pool_worker(redis_client: redis.Redis) -> PoolWorker:
    """A pool process's RQ worker, run in the test's own process, on a flushed Redis."""
    redis_client.flushdb()  # no job left over from another test ahead in the queues
    return build_pool_worker(redis_client, load_settings(), name=f"test-pool-{uuid.uuid4().hex[:8]}")


def queue_trivial_jobs(worker: PoolWorker, count: int) -> tuple[Queue, list[str]]:
    """``count`` jobs that need no database (``abs(-1)``), on priority 3's queue; their ids in order."""
    queue = next(queue for queue in worker.queues if queue.name == queue_name(3))
    return queue, [queue.enqueue("builtins.abs", -1, result_ttl=0).id for _ in range(count)]


def waiting_ids(redis_client: redis.Redis, queue: Queue) -> list[str]:
    return [raw.decode() if isinstance(raw, bytes) else raw for raw in redis_client.lrange(queue.key, 0, -1)]


def test_a_finished_jobs_transaction_pops_the_next_job_and_the_next_dequeue_sends_no_pop(redis_client: redis.Redis) -> None:
    """While jobs wait, the pop rides in the finishing ``MULTI … EXEC``: two round trips a job, not three."""
    worker = pool_worker(redis_client)
    queue, (first, second, third) = queue_trivial_jobs(worker, 3)

    taken = worker.dequeue_job_and_maintain_ttl(None)
    assert taken is not None and taken[0].id == first
    worker.execute_job(*taken)

    assert worker.prefetched is not None and worker.prefetched[0].id == second
    assert waiting_ids(redis_client, queue) == [third]
    redis_client.config_resetstat()
    taken = worker.dequeue_job_and_maintain_ttl(None)
    assert taken is not None and taken[0].id == second
    assert command_calls(redis_client).get("evalsha", 0) == 0


def test_a_worker_asked_to_stop_pops_no_next_job_with_the_last_ones_finish(redis_client: redis.Redis) -> None:
    worker = pool_worker(redis_client)
    queue, (first, second) = queue_trivial_jobs(worker, 2)
    taken = worker.dequeue_job_and_maintain_ttl(None)
    assert taken is not None

    worker._stop_requested = True  # what SIGTERM's handler sets while the job runs
    worker.execute_job(*taken)

    assert worker.prefetched is None
    assert waiting_ids(redis_client, queue) == [second]


def test_a_job_popped_ahead_goes_back_to_the_front_of_its_queue_when_the_worker_stops(redis_client: redis.Redis) -> None:
    """RQ's loop ends (here after one job) with the next job already popped: it is not left in no queue."""
    worker = pool_worker(redis_client)
    queue, (first, second, third) = queue_trivial_jobs(worker, 3)

    worker.work(burst=True, max_jobs=1)

    assert redis_client.exists(Job.key_for(first)) == 0  # finished (and deleted: no result kept)
    assert waiting_ids(redis_client, queue) == [second, third]


def test_a_pool_worker_logs_neither_rqs_dequeue_line_nor_its_job_ok_line(
    redis_client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """The attempt's own lines say more; RQ's other lines (start, "done, quitting") still come through."""
    worker = pool_worker(redis_client)
    _, (job_id,) = queue_trivial_jobs(worker, 1)

    with caplog.at_level(logging.INFO, logger="rq.worker"):
        worker.work(burst=True)

    messages = [record.getMessage() for record in caplog.records if record.name == "rq.worker"]
    assert any("done, quitting" in message for message in messages)
    assert [message for message in messages if job_id in message] == []
