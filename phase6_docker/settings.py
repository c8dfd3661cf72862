"""Phase 6 settings: who may call the published API, how often, and how long to wait for the stores.

They sit beside the scaling settings (:mod:`scaling.settings`), not on top of them: the
security layer works in front of any FastAPI app, and its tests run it in front of a small one.

| variable                      | default | meaning                                                        |
|-------------------------------|---------|----------------------------------------------------------------|
| ``API_KEY_HASHES``            | unset   | ``name:sha256hex`` entries, comma separated: the keys accepted |
|                               |         | (``python -m phase6_docker.security new-key NAME`` makes one)  |
| ``RATE_LIMIT_REQUESTS``       | ``600`` | ``POST /tasks`` per key per period (also the largest burst)    |
| ``RATE_LIMIT_PERIOD_SECONDS`` | ``60``  | the period of ``RATE_LIMIT_REQUESTS``                          |
| ``STARTUP_TIMEOUT_SECONDS``   | ``60``  | how long a process waits for PostgreSQL and Redis at start     |
| ``STARTUP_BACKOFF_MAX_SECONDS``| ``5``  | longest pause between two connection attempts at start         |

``REDIS_URL`` and ``REDIS_TIMEOUT_SECONDS`` are the shared ones (:mod:`shared.settings`): the
rate limit lives in the queue's Redis, so every API process and replica shares it.
"""

from __future__ import annotations

import re

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: A SHA-256 digest in hex: what ``API_KEY_HASHES`` holds for each key, never the key itself.
SHA256_HEX = re.compile(r"[0-9a-f]{64}")
#: A key's name appears in logs, metrics of the rate limit and Redis keys: keep it plain.
KEY_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def parse_key_hashes(text: str) -> dict[str, str]:
    """``"ops:ab12…,prometheus:cd34…"`` → ``{"ops": "ab12…", "prometheus": "cd34…"}``.

    Raises ``ValueError`` naming the bad entry: a typo here must stop the API at start, not
    lock every client out at the first request.
    """
    keys: dict[str, str] = {}
    for entry in filter(None, (part.strip() for part in text.split(","))):
        name, _, digest = entry.partition(":")
        digest = digest.removeprefix("sha256:").lower()
        if not KEY_NAME.fullmatch(name) or not SHA256_HEX.fullmatch(digest):
            shown = entry if len(entry) <= 80 else entry[:77] + "..."
            raise ValueError(f"API_KEY_HASHES entry {shown!r} is not NAME:SHA256HEX (64 hex digits)")
        if name in keys:
            raise ValueError(f"API_KEY_HASHES names the key {name!r} twice")
        keys[name] = digest
    return keys


class Phase6Settings(BaseSettings):
    """API keys, the rate limit, and the start-up wait; each field is the env var of its name."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    api_key_hashes: str = Field(default="", description="name:sha256hex entries, comma separated: the accepted API keys.")
    rate_limit_requests: int = Field(default=600, ge=1, description="POST /tasks per key per period (also the largest burst).")
    rate_limit_period_seconds: float = Field(default=60.0, gt=0, description="The period of RATE_LIMIT_REQUESTS.")
    redis_url: str | None = Field(default=None, description="The Redis that holds the rate limit (the queue's).")
    redis_timeout_seconds: float = Field(default=1.0, gt=0, description="Bound on each rate-limit call to Redis.")
    startup_timeout_seconds: float = Field(default=60.0, gt=0, description="How long to wait for PostgreSQL and Redis at start.")
    startup_backoff_max_seconds: float = Field(default=5.0, gt=0, description="Longest pause between two tries at start.")

    @field_validator("api_key_hashes")
    @classmethod
    def well_formed(cls, text: str) -> str:
        parse_key_hashes(text)  # raises with the bad entry named
        return text

    @property
    def api_keys(self) -> dict[str, str]:
        """The accepted keys: name → SHA-256 hex digest."""
        return parse_key_hashes(self.api_key_hashes)


def load_settings(**overrides: object) -> Phase6Settings:
    """Read the environment now (not at import) and apply explicit overrides on top."""
    return Phase6Settings(**overrides)  # type: ignore[arg-type]
