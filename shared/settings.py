"""Settings shared by every phase, read from environment variables.

Every knob of tasklab lives here, with its environment variable and its reason, so a reader
never meets a magic number in the middle of a module. Nothing reads the environment at import
time: call :func:`load_settings` (or build ``Settings(...)`` yourself in a test) where a
process starts, so six phases can live in one pytest process without sharing state.

| variable                 | default                    | meaning                                          |
|--------------------------|----------------------------|--------------------------------------------------|
| ``DATABASE_URL``         | ``sqlite:///./tasklab.db`` | where tasks are stored (SQLite or PostgreSQL)    |
| ``REDIS_URL``            | unset                      | the Redis the queue phases use; unset: the       |
|                          |                            | launcher starts a private ``redis-server``       |
| ``TASK_TIME_SCALE``      | ``1.0``                    | multiplies every simulated duration (0 in tests) |
| ``MAX_BODY_BYTES``       | ``1048576``                | largest request body the API accepts (413 above) |
| ``REDIS_TIMEOUT_SECONDS``| ``1.0``                    | connect/read timeout for Redis calls from the API|
| ``DB_BUSY_TIMEOUT_MS``   | ``5000``                   | how long SQLite waits for the write lock         |
| ``JOB_TIMEOUT_SECONDS``  | ``600``                    | RQ's hard limit on one job (phase 2)             |
| ``WORKER_NAME``          | unset                      | a name for the worker process (default: RQ's)    |
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

ONE_MEBIBYTE = 1024 * 1024


class Settings(BaseSettings):
    """The configuration of one tasklab process; each field maps to an env var of its name."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    database_url: str = Field(
        default="sqlite:///./tasklab.db",
        description="SQLAlchemy URL of the task store: sqlite:///path.db or postgresql+psycopg://…",
    )
    redis_url: str | None = Field(
        default=None,
        description="redis://host:port/db of the queue; unset means 'start a private redis-server'.",
    )
    task_time_scale: float = Field(
        default=1.0,
        ge=0.0,
        description="Multiplier for the simulated durations of the task catalog; 0 makes them instant.",
    )
    max_body_bytes: int = Field(
        default=ONE_MEBIBYTE,
        gt=0,
        description="Largest request body accepted; larger bodies get 413 before they are parsed.",
    )
    redis_timeout_seconds: float = Field(
        default=1.0,
        gt=0,
        description="Socket connect and read timeout for Redis: bounds how long a POST waits when Redis is down.",
    )
    db_busy_timeout_ms: int = Field(
        default=5000,
        ge=0,
        description="SQLite busy timeout: several worker processes write to one file, one at a time.",
    )
    job_timeout_seconds: int = Field(
        default=600,
        gt=0,
        description="RQ job_timeout: a job running longer than this is killed by its worker.",
    )
    worker_name: str | None = Field(
        default=None,
        description="Name the RQ worker registers under (and task.worker shows); unset lets RQ pick a random hex id.",
    )


def load_settings(**overrides: object) -> Settings:
    """Read the environment now (not at import) and apply explicit overrides on top."""
    return Settings(**overrides)  # type: ignore[arg-type]
