"""Phase 5's queues and job: one RQ queue per priority level, and phase 4's observed attempt.

Priority ``p`` (1 lowest … 5 highest) goes to the queue ``phase5:p<p>``; a pool process listens
to the five queues highest first. The code is :mod:`scaling.jobs` (phase 6 runs the same
job); this module names what phase 5's worker runs.
"""

from __future__ import annotations

from .scaling.jobs import PRIORITIES, QUEUE_NAMES, enqueue_task, make_queues, process_task, queue_for

__all__ = ["PRIORITIES", "QUEUE_NAMES", "enqueue_task", "make_queues", "process_task", "queue_for"]
