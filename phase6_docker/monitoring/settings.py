"""Monitoring settings (phase 4 on): the recovery settings, plus where metrics and logs go.

| variable                 | default  | meaning                                                      |
|--------------------------|----------|--------------------------------------------------------------|
| ``METRICS_DIR``          | unset    | root of the metrics files of one deployment; unset: a folder |
|                          |          | in the temp dir named after DATABASE_URL and REDIS_URL       |
| ``METRICS_HOST``         | 127.0.0.1| address a worker's ``--metrics-port`` listens on             |
| ``LOG_FORMAT``           | ``auto`` | ``json``, ``console``, or ``auto`` (console on a terminal)   |
| ``LOG_LEVEL``            | ``INFO`` | level of the API's log lines (workers: ``--log-level``)      |
| ``RQ_WORKER_TTL_SECONDS``| ``30``   | a worker silent this long is no longer counted alive (RQ: 420)|

Everything else is in :mod:`recovery.settings` and :mod:`shared.settings`.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from ..recovery.settings import RecoverySettings
from .logs import LogFormat
from .metrics import default_metrics_root


class MonitoringSettings(RecoverySettings):
    """The recovery settings plus metrics and logs."""

    metrics_dir: Path | None = Field(default=None, description="Root of this deployment's metrics files (one per deployment).")
    metrics_host: str = Field(default="127.0.0.1", description="Address of a worker's metrics endpoint (0.0.0.0 in a container).")
    log_format: LogFormat = Field(default="auto", description="json, console, or auto: console when stdout is a terminal.")
    log_level: str = Field(default="INFO", description="Level of the API's log lines.")
    rq_worker_ttl_seconds: int = Field(
        default=30, ge=16, description="How long a silent worker still counts as alive; RQ's default is 420 s."
    )
    stats_cache_seconds: float = Field(
        default=1.0, ge=0, le=60, description="How long one computation of GET /stats serves every request for its window."
    )
    stats_fold_seconds: float = Field(
        default=2.0, gt=0, le=300, description="How often the API folds captured task changes into the /stats aggregates."
    )

    @property
    def metrics_root(self) -> Path:
        """Where the API and the workers of this deployment keep their metrics files."""
        return self.metrics_dir or default_metrics_root(self.database_url, self.redis_url)


def load_settings(**overrides: object) -> MonitoringSettings:
    """Read the environment now (not at import) and apply explicit overrides on top."""
    return MonitoringSettings(**overrides)  # type: ignore[arg-type]
