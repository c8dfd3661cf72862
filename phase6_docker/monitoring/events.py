"""What phase 4 does when the recovery machinery moves a task: count it, and say so in the log.

:mod:`recovery` calls these methods right after a compare-and-set transition has won,
in the process that won it: the work horse (attempts), the worker (a horse killed under it), the
reconciler (a dead attempt closed, a task re-enqueued). That is what makes each final status
counted exactly once in ``tasklab_tasks_finished_total``, wherever it happened.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from shared.models import Task, TaskStatus, utc_now

from ..recovery.events import TaskEvents
from ..transitions import TERMINAL_STATUSES
from .logs import bind_task_context, get_logger
from .metrics import TaskMetrics

log = get_logger(__name__)


class MonitoringEvents(TaskEvents):
    """Metrics and log lines for every transition the recovery machinery makes."""

    def __init__(self, metrics: TaskMetrics) -> None:
        self.metrics = metrics

    def attempt_started(self, task: Task, queued_at: datetime | None) -> None:
        # From here on every line this work horse logs (RQ's included) names the task.
        bind_task_context(
            task_id=str(task.id), task_type=task.task_type, attempt=task.attempts, worker=task.worker, request_id=task.request_id
        )
        waited = seconds_between(queued_at or task.created_at, task.started_at or utc_now())
        self.metrics.wait_seconds.labels(task.task_type).observe(waited)
        log.info("attempt started", waited_seconds=round(waited, 6))

    def attempt_ended(self, task: Task, outcome: TaskStatus, run_seconds: float) -> None:
        self.metrics.run_seconds.labels(task.task_type).observe(run_seconds)
        self.count(task, outcome)
        log.info("attempt ended", outcome=outcome.value, run_seconds=round(run_seconds, 6))

    def attempt_lost(self, task: Task, outcome: TaskStatus, cause: str) -> None:
        self.count(task, outcome)
        log.warning(
            "attempt lost",
            outcome=outcome.value,
            noticed_by=cause,
            task_id=str(task.id),
            task_type=task.task_type,
            attempt=task.attempts,
        )

    def task_repaired(self, task_id: uuid.UUID, kind: str) -> None:
        self.metrics.repairs.labels(kind).inc()
        log.info("task repaired", kind=kind, task_id=str(task_id))

    def count(self, task: Task, outcome: TaskStatus) -> None:
        """A retry, or a final status: the two counters a transition out of ``running`` feeds."""
        if outcome is TaskStatus.RETRYING:
            self.metrics.retries.labels(task.task_type).inc()
        elif outcome in TERMINAL_STATUSES:
            self.metrics.finished.labels(task.task_type, outcome.value).inc()


def seconds_between(start: datetime, end: datetime) -> float:
    """Elapsed seconds, never negative (clocks of two machines may disagree by a little)."""
    if start.tzinfo is None:  # RQ stores naive UTC timestamps in places
        start = start.replace(tzinfo=UTC)
    if end.tzinfo is None:
        end = end.replace(tzinfo=UTC)
    return max(0.0, (end - start).total_seconds())
