"""The worker's own loop around RQ's: it comes back from an outage by itself, and never takes a name another worker holds.

After a partition or a Redis restart that kept its data, the registration a worker made before the
outage can still be in Redis when its new loop starts; RQ then refuses the name. A registration
this very process made is replaced; one made by any other process still stops the worker.
Real Redis, in this test process, with ``--burst`` loops that end once the queue is empty.
"""

from __future__ import annotations

import os
import socket

import redis
from rq import SimpleWorker

from phase3_retry.recovery.worker import TaskWorker, run_worker_loop


class BurstWorker(TaskWorker, SimpleWorker):
    """Phase 3's worker without the fork: the loop under test, nothing else."""


def registration_of(connection: redis.Redis, name: str, *, pid: int, hostname: str) -> None:
    """What RQ's ``register_birth`` leaves in Redis for a live worker, as if made by ``pid`` on ``hostname``."""
    connection.hset(f"rq:worker:{name}", mapping={"pid": pid, "hostname": hostname, "birth": "2026-01-01T00:00:00Z"})
    connection.expire(f"rq:worker:{name}", 90)


def loop(connection: redis.Redis, name: str) -> int:
    return run_worker_loop(
        lambda: BurstWorker(["phase3:tasks"], connection=connection, name=name),
        name=name,
        burst=True,
        log_level="WARNING",
        reconnect_seconds=0.05,
        with_scheduler=False,
    )


def test_a_registration_this_process_left_before_an_outage_is_replaced(redis_client: redis.Redis) -> None:
    redis_client.flushdb()
    registration_of(redis_client, "after-outage", pid=os.getpid(), hostname=socket.gethostname())

    assert loop(redis_client, "after-outage") == 0


def test_a_name_another_process_holds_stops_the_worker(redis_client: redis.Redis) -> None:
    redis_client.flushdb()
    registration_of(redis_client, "taken", pid=1, hostname=socket.gethostname())

    assert loop(redis_client, "taken") == 1
    assert redis_client.hget("rq:worker:taken", "pid") == b"1"  # left alone
