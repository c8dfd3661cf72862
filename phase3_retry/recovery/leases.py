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
import os
import threading
import time
import uuid
from collections.abc import Iterator
from types import TracebackType

from redis import Redis
from redis.client import Pipeline
from redis.exceptions import RedisError

#: Task ids are UUIDs, unique across phases, so one prefix serves every phase sharing a Redis.
LEASE_KEY_PREFIX = "tasklab:lease:"

log = logging.getLogger(__name__)


def lease_key(task_id: uuid.UUID | str) -> str:
    return f"{LEASE_KEY_PREFIX}{task_id}"


def attempt_holder(worker_name: str | None) -> str:
    """Who holds an attempt's lease: the worker's name and the pid of the process running it."""
    return f"{worker_name}/{os.getpid()}"


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


class LeaseKeeper:
    """Holds the leases of every attempt a long-lived process runs, renewed from one thread.

    :class:`TaskLease` starts a renewing thread per attempt: right for a forked work horse,
    which runs one attempt and exits. A process that runs thousands of attempts (phase 5's
    pool) would start and join a thread for each, about 0.13 ms apiece, more than a no-op
    task's handler takes. The keeper's thread lives as long as the process and renews whatever
    leases are held when it wakes. The key, its TTL and its holder are the same as with
    :class:`TaskLease`: the reconciler cannot tell them apart.
    """

    def __init__(self, connection: Redis, *, ttl_seconds: int, release_later: bool = False) -> None:
        """With ``release_later``, a lease that ends is not deleted at once: its key waits in
        :meth:`take_released` for the caller to delete it in a transaction it sends anyway."""
        self.connection = connection
        self.ttl_seconds = ttl_seconds
        self.release_later = release_later
        self._held: dict[str, str] = {}  # lease key -> holder
        self._released: list[str] = []
        self._set_ahead: dict[str, str] = {}  # lease key -> holder, SET by the caller's transaction
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @contextlib.contextmanager
    def hold(self, task_id: uuid.UUID, *, holder: str) -> Iterator[None]:
        """Take the lease of one attempt for as long as the ``with`` block runs."""
        key = lease_key(task_id)
        if self._set_ahead.pop(key, None) != holder:
            self._set(key, holder)
        with self._lock:
            self._held[key] = holder
            if self._thread is None:
                self._thread = threading.Thread(target=self._renew_forever, name="lease-keeper", daemon=True)
                self._thread.start()
        try:
            yield
        finally:
            with self._lock:
                self._held.pop(key, None)
            if self.release_later:
                self._released.append(key)  # no longer renewed: it lapses by itself if nobody deletes it
            else:
                self.release([key])

    def set_in(self, pipeline: Pipeline, task_id: uuid.UUID | str, *, holder: str) -> None:
        """Add the lease's ``SET`` to a transaction the caller sends anyway, ahead of :meth:`hold`.

        The pool sends it with the job's start (:mod:`scaling.bookkeeping`): one round trip
        less per attempt. :meth:`hold` then skips its own ``SET``; a lease set ahead that is never
        held (the task was not claimable) is handed back by :meth:`take_released`, to delete.
        """
        key = lease_key(task_id)
        pipeline.set(key, holder, ex=self.ttl_seconds)
        self._set_ahead[key] = holder

    def take_released(self) -> list[str]:
        """The keys of the leases that ended since the last call (``release_later``), to delete,
        and of those set ahead that no attempt went on to hold."""
        released, self._released = self._released, []
        unused, self._set_ahead = list(self._set_ahead), {}
        return released + unused

    def release(self, keys: list[str]) -> None:
        """Delete ended leases now; if Redis is down, they expire by themselves."""
        if keys:
            with contextlib.suppress(RedisError):
                self.connection.delete(*keys)

    def _set(self, key: str, holder: str) -> None:
        try:
            self.connection.set(key, holder, ex=self.ttl_seconds)  # SET, not EXPIRE: see TaskLease
        except RedisError as exc:  # Redis down: the attempt goes on; the reconciler will judge
            log.warning("could not renew %s: %s", key, exc)

    def _renew_forever(self) -> None:
        # A daemon thread: it dies with the process, which is what a crash must look like.
        while True:
            time.sleep(self.ttl_seconds / 3)
            with self._lock:
                held = list(self._held.items())
            for key, holder in held:
                self._set(key, holder)


def leases_held(connection: Redis, task_ids: list[uuid.UUID]) -> dict[uuid.UUID, bool]:
    """For each task, whether a live attempt holds its lease (one round trip for all)."""
    if not task_ids:
        return {}
    exists = connection.pipeline(transaction=False)
    for task_id in task_ids:
        exists.exists(lease_key(task_id))
    return {task_id: bool(found) for task_id, found in zip(task_ids, exists.execute(), strict=True)}
