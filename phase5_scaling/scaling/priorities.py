"""Five priority levels, taken highest first, and a bound on how long any level waits.

Strict priority is the plain reading of "priority": every worker listens to ``phase5:p5`` …
``phase5:p1`` in that order, and RQ takes from the first queue that is not empty. Alone, it
starves: with a steady stream of priority-5 work, a priority-1 task waits for ever (RQ's issue
#1420 and Celery's #4028 and #7633 ask for a fix; neither ships one).

The rule here is *aging with a bound*: each level below the top has a longest wait
(``PRIORITY_MAX_WAIT_SECONDS``, 60 s for level 1 … 5 s for level 4 by default). The pool checks
the head of each lower queue every ``AGING_INTERVAL_SECONDS``; a job that has waited past its
level's bound is moved to the *front* of the top queue, so it is the next job any worker takes.
A task of level ``p`` therefore starts within ``bound(p) + interval + one attempt`` of being
queued, whatever arrives above it, while the order among tasks within their bound stays strict.

Why not a weighted random choice of queue? It bounds nothing: it only makes a long wait
unlikely. An operator can promise "priority 1 starts within a minute" with aging, and a test can
check it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from redis import Redis
from rq import Queue
from rq.utils import str_to_date

#: Move the head of one list to the front of another and record its new queue in the job, in
#: one step (a Lua script runs atomically): a worker can never find the job in neither list,
#: and the reconciler, which looks for a queued job in its ``origin`` queue, finds it there.
PROMOTE_HEAD = """
local job_id = redis.call('LINDEX', KEYS[1], 0)
if (not job_id) or job_id ~= ARGV[1] then return 0 end
redis.call('LMOVE', KEYS[1], KEYS[2], 'LEFT', 'LEFT')
redis.call('HSET', ARGV[2] .. job_id, 'origin', ARGV[3])
return 1
"""

JOB_KEY_PREFIX = "rq:job:"


@dataclass(frozen=True)
class Promotion:
    """One job moved to the front of the top queue, and how long it had waited."""

    job_id: str
    from_priority: int
    waited_seconds: float


def promote_overdue(
    connection: Redis,
    queues: Sequence[Queue],
    priorities: Sequence[int],
    max_wait_seconds: Mapping[int, float],
    now: float | None = None,
) -> list[Promotion]:
    """Move every job that waited past its level's bound to the front of the top queue.

    ``queues`` and ``priorities`` go together, highest first (``queues[0]`` is the top). A queue
    is FIFO, so its head is its oldest job: when the head is within its bound, so is every job
    behind it, and one look per queue per pass is enough.
    """
    now = time.time() if now is None else now
    promote = connection.register_script(PROMOTE_HEAD)
    top = queues[0]
    promoted: list[Promotion] = []
    # Lowest level first: of two overdue jobs, the one that waited at the lower level ends up in
    # front, since each is pushed to the very front.
    for queue, priority in reversed(list(zip(queues[1:], priorities[1:], strict=True))):
        while True:
            head = connection.lindex(queue.key, 0)
            if head is None:
                break
            job_id = head.decode() if isinstance(head, bytes) else head
            enqueued_at = connection.hget(f"{JOB_KEY_PREFIX}{job_id}", "enqueued_at")
            waited = now - _timestamp(enqueued_at) if enqueued_at else float("inf")
            if waited <= max_wait_seconds[priority]:
                break
            if promote(keys=[queue.key, top.key], args=[job_id, JOB_KEY_PREFIX, top.name]):
                promoted.append(Promotion(job_id, priority, waited))
    return promoted


def _timestamp(raw: bytes | str) -> float:
    """RQ's ``enqueued_at`` (ISO 8601, UTC, parsed timezone-aware) as a Unix time."""
    return str_to_date(raw).timestamp()
