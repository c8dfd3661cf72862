"""Leases: how the reconciler tells a running attempt from a dead one, in seconds.

A task row that says ``running`` only records that an attempt *started*. If the process
running it is SIGKILLed, the row says ``running`` for ever. RQ notices eventually, but its
own heartbeat deadline is at least 60 s away and its cleanup runs every 10 minutes.

So every attempt holds a lease: a Redis key ``tasklab:lease:<task id>`` with a short TTL, which
a thread in the work horse renews three times per TTL while the handler runs. A crash stops
the renewals, the key expires within one TTL, and the reconciler sees a ``running`` task with
no lease. Redis expiry does the failure detection; no clock is compared across machines.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid
from types import TracebackType

from redis import Redis
from redis.exceptions import RedisError

#: Task ids are UUIDs, unique across phases, so one prefix serves every phase sharing a Redis.
LEASE_KEY_PREFIX = "tasklab:lease:"

log = logging.getLogger(__name__)


def lease_key(task_id: uuid.UUID | str) -> str:
    return f"{LEASE_KEY_PREFIX}{task_id}"


class TaskLease:
    """Hold the lease of one attempt for as long as the ``with`` block runs."""

    def __init__(self, connection: Redis, task_id: uuid.UUID, *, holder: str, ttl_seconds: int) -> None:
        self.connection = connection
        self.key = lease_key(task_id)
        self.holder = holder
        self.ttl_seconds = ttl_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew_until_stopped, name=f"lease-{task_id}", daemon=True)

    def _renew(self) -> None:
        try:
            # SET, not EXPIRE: after a Redis restart the key is gone and must come back.
            self.connection.set(self.key, self.holder, ex=self.ttl_seconds)
        except RedisError as exc:  # Redis down: the attempt goes on; the reconciler will judge
            log.warning("could not renew %s: %s", self.key, exc)

    def _renew_until_stopped(self) -> None:
        while not self._stop.wait(self.ttl_seconds / 3):
            self._renew()

    def __enter__(self) -> TaskLease:
        self._renew()
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join()
        with contextlib.suppress(RedisError):  # if Redis is down, the lease expires by itself
            self.connection.delete(self.key)


def leases_held(connection: Redis, task_ids: list[uuid.UUID]) -> dict[uuid.UUID, bool]:
    """For each task, whether a live attempt holds its lease (one round trip for all)."""
    if not task_ids:
        return {}
    exists = connection.pipeline(transaction=False)
    for task_id in task_ids:
        exists.exists(lease_key(task_id))
    return {task_id: bool(found) for task_id, found in zip(task_ids, exists.execute(), strict=True)}
