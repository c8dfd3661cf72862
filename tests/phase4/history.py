"""An hour of task history written straight into the table, with timestamps the test chooses.

``/stats`` reports on time windows (the last hour, per minute), and a test cannot wait an hour
for real tasks to fill one. It writes ended tasks directly through the database engine instead,
each with its created, started and completed instants, then checks what ``/stats`` and the
dashboard make of them. Nothing is mocked: the API reads these rows like any others.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session

from shared.models import Task, TaskStatus
from shared.tasks import TaskType

#: Error texts of the seeded failures, most frequent first (relative weights).
HISTORY_ERRORS: dict[str, int] = {
    "TransientTaskError: upstream service unavailable (503)": 6,
    "TimeoutError: attempt 3 timed out after 30 s and was stopped": 3,
    "PermanentTaskError: invalid image dimensions": 1,
}
#: Share of seeded tasks that failed (flaky ones fail far more often).
HISTORY_FAILED_SHARE = 0.04
HISTORY_FLAKY_FAILED_SHARE = 0.35
#: Typical run time per type, in seconds (the seeded ones vary around it).
HISTORY_RUN_SECONDS: dict[TaskType, float] = {
    TaskType.TEXT_PROCESSING: 3.0,
    TaskType.AI_SUMMARIZATION: 5.0,
    TaskType.BATCH_PROCESSING: 4.0,
    TaskType.IMAGE_PROCESSING: 4.0,
    TaskType.FIBONACCI: 1.0,
    TaskType.COMPUTE: 0.08,
    TaskType.NOOP: 0.003,
    TaskType.FLAKY: 1.0,
}
HISTORY_RNG_SEED = 4
#: Seeded tasks end between these many seconds ago: inside the hour a dashboard shows, with
#: minutes to spare before the oldest of them leaves it while a test runs.
HISTORY_ENDED_SECONDS_AGO = (5.0, 55 * 60.0)


def ended_task(
    task_type: str,
    status: TaskStatus,
    *,
    created_at: datetime,
    wait_seconds: float,
    run_seconds: float,
    error: str | None = None,
) -> Task:
    """A task that ended: created, waited ``wait_seconds`` in the queue, ran ``run_seconds``."""
    started_at = created_at + timedelta(seconds=wait_seconds)
    return Task(
        task_type=TaskType(task_type),
        payload={},
        status=status,
        error=error,
        attempts=1,
        progress=100 if status is TaskStatus.COMPLETED else 0,
        worker="history-worker",
        created_at=created_at,
        started_at=started_at,
        completed_at=started_at + timedelta(seconds=run_seconds),
    )


def seed_last_hour(engine: Engine, now: datetime, count: int, *, rng_seed: int = HISTORY_RNG_SEED) -> list[Task]:
    """``count`` ended tasks spread over the hour before ``now`` (see :data:`HISTORY_ENDED_SECONDS_AGO`).

    Mixed types, a few failures.
    """
    rng = random.Random(rng_seed)
    errors = list(HISTORY_ERRORS)
    weights = list(HISTORY_ERRORS.values())
    tasks: list[Task] = []
    for _ in range(count):
        task_type = rng.choice(list(TaskType))
        run = HISTORY_RUN_SECONDS[task_type] * rng.uniform(0.7, 1.6)
        wait = rng.lognormvariate(-1.0, 1.0)
        completed_at = now - timedelta(seconds=rng.uniform(*HISTORY_ENDED_SECONDS_AGO))
        created_at = completed_at - timedelta(seconds=run + wait)
        failed_share = HISTORY_FLAKY_FAILED_SHARE if task_type is TaskType.FLAKY else HISTORY_FAILED_SHARE
        failed = rng.random() < failed_share
        tasks.append(
            ended_task(
                task_type.value,
                TaskStatus.FAILED if failed else TaskStatus.COMPLETED,
                created_at=created_at,
                wait_seconds=wait,
                run_seconds=run,
                error=rng.choices(errors, weights)[0] if failed else None,
            )
        )
    insert(engine, tasks)
    return tasks


def insert(engine: Engine, tasks: list[Any]) -> None:
    with Session(engine, expire_on_commit=False) as session:
        session.add_all(tasks)
        session.commit()
