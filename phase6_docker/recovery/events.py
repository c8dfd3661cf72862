"""What the recovery machinery tells the phase it runs in, as it moves tasks along.

Phase 3 listens to nothing. Phase 4 turns every event into metrics and log lines; the code that
moves tasks stays the same. Each method is called *after* the compare-and-set transition it
reports has won, once per transition, in the process that made it: so a metric counted here is
counted once, however many workers and reconcilers race for the same task.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from shared.models import Task, TaskStatus


class TaskEvents:
    """The events a phase may observe; every method does nothing unless a phase overrides it."""

    def attempt_started(self, task: Task, queued_at: datetime | None) -> None:
        """A worker claimed ``task`` for one attempt (``task.attempts`` counts it already).

        ``queued_at`` is when the attempt's job last entered a queue (``None`` if unknown).
        """

    def attempt_ended(self, task: Task, outcome: TaskStatus, run_seconds: float) -> None:
        """The attempt ended in ``outcome``: ``completed``, ``failed`` or ``retrying``."""

    def attempt_lost(self, task: Task, outcome: TaskStatus, cause: str) -> None:
        """An attempt died with its process (``retrying`` or ``failed`` now); ``cause`` says who noticed."""

    def task_repaired(self, task_id: uuid.UUID, kind: str) -> None:
        """The reconciler repaired a task: ``enqueued``, ``recovered``, ``failed`` or ``promoted``."""


#: The listener of phases that observe nothing (phase 3).
NO_EVENTS = TaskEvents()
