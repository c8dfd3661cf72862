"""Chapter 5, exercises 1 and 2: what the status cache may hold, and where aging puts a late job."""

from __future__ import annotations

from collections.abc import Sequence

from redis import Redis
from rq import Queue

from phase5_scaling.transitions import ALLOWED_TRANSITIONS
from shared.models import TaskStatus


def cacheable_statuses() -> frozenset[TaskStatus]:
    """The statuses a cache may keep for ever: those the state machine has no way out of.

    Derived from the transitions, not listed by hand: add a move out of a status (as phase 3's
    operator retry added ``failed → pending``) and it stops being cacheable by itself.
    """
    return frozenset(status for status, moves in ALLOWED_TRANSITIONS.items() if not moves)


def next_job_ids(connection: Redis, queues: Sequence[Queue], count: int) -> list[str]:
    """The ids of the next ``count`` jobs a pool process would take, in order.

    A worker takes from the first non-empty queue, highest level first, from the front of the
    list (RQ pushes at the back, aging pushes at the front).
    """
    taken: list[str] = []
    for queue in queues:
        remaining = count - len(taken)
        if remaining <= 0:
            break
        taken += [raw.decode() if isinstance(raw, bytes) else str(raw) for raw in connection.lrange(queue.key, 0, remaining - 1)]
    return taken
