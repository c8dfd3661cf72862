"""Recovery settings (phase 3 on): the shared ones, plus how hard to try and how fast to notice a crash.

Every knob below is an environment variable of the same name (upper case), read by
:func:`load_settings` when a process starts, never at import.

| variable                             | default | meaning                                              |
|--------------------------------------|---------|------------------------------------------------------|
| ``RETRY_MAX_ATTEMPTS``               | ``5``   | attempts a task gets before it is ``failed``         |
| ``RETRY_BACKOFF_BASE_SECONDS``       | ``1``   | wait before the first retry                          |
| ``RETRY_BACKOFF_FACTOR``             | ``2.0`` | each further wait is this many times longer          |
| ``RETRY_BACKOFF_CAP_SECONDS``        | ``60``  | no wait is longer than this                          |
| ``RETRY_BACKOFF_JITTER``             | ``0.5`` | up to this fraction of each wait is removed at random|
| ``TASK_POLICIES``                    | ``{}``  | JSON, per task type: ``max_attempts``,               |
|                                      |         | ``timeout_seconds``, ``backoff_base_seconds``,       |
|                                      |         | ``backoff_cap_seconds``                              |
| ``TASK_LEASE_SECONDS``               | ``10``  | a running attempt renews its lease this often x 3;   |
|                                      |         | a lease that lapses means the attempt is dead        |
| ``RECONCILE_INTERVAL_SECONDS``       | ``5.0`` | time between two passes of the reconciler            |
| ``RECONCILE_GRACE_SECONDS``          | ``5.0`` | how long a task must look orphaned before repair     |
| ``RECONCILER_IN_WORKER``             | ``true``| start a reconciler process beside every worker       |
| ``RQ_MAINTENANCE_INTERVAL_SECONDS``  | ``30``  | RQ's registry cleanup and scheduler takeover (RQ: 600)|
| ``RQ_JOB_MONITORING_INTERVAL_SECONDS``| ``5``  | how often a worker checks on its work horse (RQ: 30) |
| ``REDIS_RECONNECT_MAX_SECONDS``      | ``2.0`` | longest wait between reconnects to a lost Redis      |
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from shared.settings import Settings
from shared.tasks import TaskType


class TaskPolicyOverride(BaseModel):
    """What one task type changes from the defaults; every field left out keeps the default."""

    model_config = ConfigDict(extra="forbid")

    max_attempts: int | None = Field(default=None, ge=1, le=100)
    timeout_seconds: int | None = Field(default=None, ge=1)
    backoff_base_seconds: int | None = Field(default=None, ge=0)
    backoff_cap_seconds: int | None = Field(default=None, ge=0)


@dataclass(frozen=True)
class RetryPolicy:
    """How one task type is run: how many attempts, how long each may take, how long to wait."""

    max_attempts: int
    timeout_seconds: int
    backoff_base_seconds: int
    backoff_factor: float
    backoff_cap_seconds: int
    backoff_jitter: float


class RecoverySettings(Settings):
    """The shared settings plus retries, timeouts and recovery."""

    retry_max_attempts: int = Field(default=5, ge=1, le=100, description="Attempts before a task is failed for good.")
    retry_backoff_base_seconds: int = Field(default=1, ge=0, description="Wait before the first retry, in whole seconds.")
    retry_backoff_factor: float = Field(default=2.0, ge=1.0, description="Growth of the wait from one retry to the next.")
    retry_backoff_cap_seconds: int = Field(default=60, ge=0, description="Upper bound of any single wait.")
    retry_backoff_jitter: float = Field(
        default=0.5, ge=0.0, le=1.0, description="Fraction of each wait removed at random, so retries do not march in step."
    )
    task_policies: dict[TaskType, TaskPolicyOverride] = Field(
        default_factory=dict, description="Per task type overrides, as JSON in TASK_POLICIES."
    )
    task_lease_seconds: int = Field(
        default=10, ge=1, description="Lifetime of the lease a running attempt renews; a lapsed lease means a dead attempt."
    )
    reconcile_interval_seconds: float = Field(default=5.0, gt=0, description="Time between reconciler passes.")
    reconcile_grace_seconds: float = Field(
        default=5.0, ge=0, description="How long a task must look orphaned, pass after pass, before it is repaired."
    )
    reconciler_in_worker: bool = Field(default=True, description="Start a reconciler process beside every worker.")
    rq_maintenance_interval_seconds: int = Field(
        default=30, ge=1, description="RQ registry cleanup and scheduler takeover; RQ's own default is 600 s."
    )
    rq_job_monitoring_interval_seconds: int = Field(
        default=5, ge=1, description="How often the worker wakes to check its work horse; RQ's default is 30 s."
    )
    redis_reconnect_max_seconds: float = Field(
        default=2.0, gt=0, description="Longest pause between reconnect attempts when Redis is gone (RQ: 60 s)."
    )

    def policy_for(self, task_type: TaskType | str) -> RetryPolicy:
        """The defaults, with the task type's overrides from ``TASK_POLICIES`` applied."""
        override = self.task_policies.get(TaskType(task_type), TaskPolicyOverride())
        return RetryPolicy(
            max_attempts=override.max_attempts or self.retry_max_attempts,
            timeout_seconds=override.timeout_seconds or self.job_timeout_seconds,
            backoff_base_seconds=(
                override.backoff_base_seconds if override.backoff_base_seconds is not None else self.retry_backoff_base_seconds
            ),
            backoff_factor=self.retry_backoff_factor,
            backoff_cap_seconds=(
                override.backoff_cap_seconds if override.backoff_cap_seconds is not None else self.retry_backoff_cap_seconds
            ),
            backoff_jitter=self.retry_backoff_jitter,
        )


def load_settings(**overrides: object) -> RecoverySettings:
    """Read the environment now (not at import) and apply explicit overrides on top."""
    return RecoverySettings(**overrides)  # type: ignore[arg-type]
