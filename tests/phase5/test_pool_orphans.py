"""A pool process never outlives its supervisor, whatever Redis is doing when the stop comes.

The supervisor is SIGKILLed (so Linux's parent-death signal is the only stop its processes get)
and Redis is killed a moment before or after it. A pool process that took the stop while Redis
was gone used to sit in RQ's reconnect loop for ever, and register as a worker nobody supervises
when a Redis came back on the port. Each stop must end the process within the grace period.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import psutil
import pytest
import redis

from shared.redis_server import PrivateRedis
from tasklab_cli.processes import ManagedProcess
from tests.phase5.conftest import PoolFactory, pool_processes
from tests.support import holds_for, wait_for

#: The pool's drain grace in these tests: the bound every stop must meet.
GRACE_SECONDS = 2.0
#: Seconds between killing Redis and killing the supervisor (negative: the supervisor first).
#: One in every run (with the frozen Redis below); the rest in the slow set CI runs.
KILL_GAPS = [
    pytest.param(gap, marks=() if gap == 0.0 else pytest.mark.slow, id=f"redis{gap:+.2f}s")
    for gap in (-0.5, -0.1, 0.0, 0.05, 0.2, 0.6, 1.0)
]


def kill_supervisor(pool: ManagedProcess) -> None:
    """SIGKILL the supervisor alone: no grace kill of its processes, only their parent-death signal."""
    os.kill(pool.pid, signal.SIGKILL)
    pool.process.wait(timeout=10)


def alive(pids: Iterator[int] | list[int]) -> list[int]:
    """The pids that still run (zombies excepted)."""
    running = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                running.append(pid)
        except psutil.NoSuchProcess:
            pass
    return running


@pytest.mark.timeout(300)
@pytest.mark.parametrize("gap", KILL_GAPS)
def test_no_pool_process_survives_its_supervisor_and_redis_dying_together(
    pools: PoolFactory, own_redis: PrivateRedis, gap: float
) -> None:
    """Given an idle pool of two processes, when Redis and the supervisor die within a second of
    each other, then both processes are gone within the grace, and none registers when Redis returns."""
    pool = pools(
        "--processes", "2", "--grace-seconds", str(GRACE_SECONDS),
        extra_env={"REDIS_URL": own_redis.url, "POOL_GRACE_SECONDS": str(GRACE_SECONDS)},
    )  # fmt: skip
    client = redis.Redis.from_url(own_redis.url)
    try:
        wait_for(lambda: len(pool_processes(pool)) == 2, timeout=30, message="two pool processes")
        children = list(pool_processes(pool).values())
        wait_for(lambda: client.scard("rq:workers") >= 2, timeout=30, message="both processes registered")

        if gap < 0:
            kill_supervisor(pool)
            time.sleep(-gap)
            own_redis.kill()
        else:
            own_redis.kill()
            time.sleep(gap)
            kill_supervisor(pool)

        survivors = wait_for(
            lambda: not alive(children) or None, timeout=GRACE_SECONDS + 8, interval=0.1, message="no pool process left"
        )
        assert survivors, alive(children)

        own_redis.start(wipe=True)  # empty: any worker in it now registered after the stop
        # A process that survived would reconnect and register within a second.
        holds_for(lambda: client.smembers("rq:workers") == set(), 2.0, message="no worker registered with nobody supervising it")
    finally:
        client.close()
        for pid in alive(children if "children" in locals() else []):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.timeout(120)
def test_no_pool_process_survives_its_supervisor_while_redis_hangs(pools: PoolFactory, own_redis: PrivateRedis) -> None:
    """Given an idle pool and a Redis that stops answering (frozen: connections open, no reply),
    when the supervisor is SIGKILLed, then its processes still end within the grace: a stop must
    not wait on a Redis call that never returns."""
    pool = pools(
        "--processes", "2", "--grace-seconds", str(GRACE_SECONDS),
        extra_env={"REDIS_URL": own_redis.url, "POOL_GRACE_SECONDS": str(GRACE_SECONDS)},
    )  # fmt: skip
    client = redis.Redis.from_url(own_redis.url)
    redis_pid = own_redis.pid
    children: list[int] = []
    try:
        wait_for(lambda: len(pool_processes(pool)) == 2, timeout=30, message="two pool processes")
        children = list(pool_processes(pool).values())
        wait_for(lambda: client.scard("rq:workers") >= 2, timeout=30, message="both processes registered")
        os.kill(redis_pid, signal.SIGSTOP)

        kill_supervisor(pool)

        gone = wait_for(
            lambda: not alive(children) or None, timeout=GRACE_SECONDS + 8, interval=0.1, message="no pool process left"
        )
        assert gone, alive(children)
    finally:
        os.kill(redis_pid, signal.SIGCONT)
        client.close()
        for pid in alive(children):
            os.kill(pid, signal.SIGKILL)
