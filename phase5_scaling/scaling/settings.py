"""Settings of phases 5 and 6: phase 4's (recovery, metrics, logs), plus priorities, the pool and the cache.

| variable                      | default               | meaning                                          |
|-------------------------------|-----------------------|--------------------------------------------------|
| ``PRIORITY_MAX_WAIT_SECONDS`` | ``{"1": 60, "2": 30,``| JSON, per priority level: a job waiting longer   |
|                               | ``"3": 15, "4": 5}``  | than this jumps to the front of the top queue    |
| ``AGING_INTERVAL_SECONDS``    | ``0.5``               | how often the pool looks for jobs waiting too long|
| ``POOL_PROCESSES``            | ``2``                 | worker processes in the pool (``--processes``)    |
| ``POOL_GRACE_SECONDS``        | ``30``                | on SIGTERM, how long running attempts may finish  |
| ``POOL_RESTART_BACKOFF_MAX_SECONDS`` | ``10``         | longest wait before restarting a process that     |
|                               |                       | keeps dying at start                              |
| ``STATUS_CACHE_TTL_SECONDS``  | ``3600``              | how long a finished task stays in the Redis cache |
| ``SUBMIT_BATCH_MAX``          | ``256``               | most submits the API stores in one transaction    |
| ``POOL_PYTHON_OPTIMIZE``      | ``2``                 | pool processes run ``python -OO`` (2), ``-O`` (1) |
|                               |                       | or neither (0); see ``scaling/pool_process.py`` |
"""

from __future__ import annotations

from pydantic import Field, field_validator

from shared.models import PRIORITY_HIGHEST, PRIORITY_LOWEST

from ..monitoring.settings import MonitoringSettings

#: The default bound on the wait of each level below the top one, in seconds.
DEFAULT_MAX_WAIT_SECONDS: dict[int, float] = {1: 60.0, 2: 30.0, 3: 15.0, 4: 5.0}


class ScalingSettings(MonitoringSettings):
    """The monitoring settings plus priorities, the pool and the status cache (phases 5 and 6)."""

    priority_max_wait_seconds: dict[int, float] = Field(
        default_factory=lambda: dict(DEFAULT_MAX_WAIT_SECONDS),
        description="Per level below the top one: the longest a job waits before it is promoted to the front of the top queue.",
    )
    aging_interval_seconds: float = Field(default=0.5, gt=0, description="How often the pool promotes jobs that waited too long.")
    pool_processes: int = Field(default=2, ge=1, le=64, description="Worker processes in the pool.")
    pool_grace_seconds: float = Field(default=30.0, ge=0, description="On SIGTERM: how long running attempts may take to finish.")
    pool_python_optimize: int = Field(
        default=2,
        ge=0,
        le=2,
        description="Pool processes run python -OO (2: no docstrings, no asserts, 5 MB less each), -O (1) or neither (0).",
    )
    pool_restart_backoff_max_seconds: float = Field(
        default=10.0, gt=0, description="Longest wait before restarting a process that keeps dying right after it starts."
    )

    status_cache_ttl_seconds: int = Field(
        default=3600, ge=1, description="How long a finished task stays in the Redis status cache (it never goes stale)."
    )

    submit_batch_max: int = Field(
        default=256, ge=1, le=10_000, description="The most submits the API stores and queues in one transaction (group commit)."
    )

    @field_validator("priority_max_wait_seconds")
    @classmethod
    def every_level_below_the_top(cls, bounds: dict[int, float]) -> dict[int, float]:
        """A bound for each of levels 1 to 4 (the top level is never promoted), each positive."""
        expected = set(range(PRIORITY_LOWEST, PRIORITY_HIGHEST))
        if set(bounds) != expected or any(seconds <= 0 for seconds in bounds.values()):
            raise ValueError(f"give a positive number of seconds for each of the levels {sorted(expected)}")
        return bounds


def load_settings(**overrides: object) -> ScalingSettings:
    """Read the environment now (not at import) and apply explicit overrides on top."""
    return ScalingSettings(**overrides)  # type: ignore[arg-type]
