"""A status cache in Redis for ``GET /tasks/{id}`` that can never be stale.

Phase 5 puts a Redis cache in front of the task status. The danger of any cache is serving
a status older than the one the database committed: a client polling a task would see it go
back from ``completed`` to ``running``. The rule here makes that impossible by construction:
**cache only what cannot change.** A task that is ``completed`` or ``cancelled`` has no way out
of that status (:data:`transitions.ALLOWED_TRANSITIONS` lists none; ``failed`` has one,
an operator's retry, so it is not cached). A cached task is therefore the database's task, for
as long as the entry lives, and nothing ever has to be invalidated.

What it buys: a client polling for a result reads the database until the task ends, and Redis
after; dashboards and retries of finished tasks stop touching the database. What it costs: one
Redis round trip per read (a miss adds a ``SET`` once per task). Redis down: every read is a
miss and goes to the database, which answers as before.
"""

from __future__ import annotations

import contextlib
import uuid

from redis import Redis
from redis.exceptions import RedisError

from shared.models import TaskRead, TaskStatus

from ..transitions import ALLOWED_TRANSITIONS

#: Statuses with no way out: a task in one of them is the same in the database for ever.
IMMUTABLE_STATUSES: frozenset[TaskStatus] = frozenset(status for status, moves in ALLOWED_TRANSITIONS.items() if not moves)

KEY_PREFIX = "phase5:task:"


class StatusCache:
    """Read-through cache of finished tasks (see the module docstring for why it is never stale)."""

    def __init__(self, connection: Redis, ttl_seconds: int) -> None:
        self.connection = connection
        self.ttl_seconds = ttl_seconds

    @staticmethod
    def key(task_id: uuid.UUID) -> str:
        return f"{KEY_PREFIX}{task_id}"

    def get(self, task_id: uuid.UUID) -> TaskRead | None:
        try:
            raw = self.connection.get(self.key(task_id))
        except RedisError:
            return None  # Redis down: a miss, and the database answers
        return TaskRead.model_validate_json(raw) if raw else None

    def remember(self, task: TaskRead) -> None:
        if task.status not in IMMUTABLE_STATUSES:
            return  # it can still change: only the database may answer for it
        with contextlib.suppress(RedisError):  # Redis down: not cached this time; the next read tries again
            self.connection.set(self.key(task.id), task.model_dump_json(), ex=self.ttl_seconds)
