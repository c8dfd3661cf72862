"""A per-key rate limit kept in Redis, so every API process and replica enforces one budget.

A limit counted in each process's memory would let a client that spreads its calls over the
uvicorn processes (4 per container) and the API replicas send N times the limit. Here the
state is one Redis key per API key, updated by a Lua script: Redis runs a script atomically,
so two processes deciding at the same instant cannot both take the last slot.

The algorithm is GCRA (the generic cell rate algorithm; a token bucket stored as one number).
The key holds the *theoretical arrival time* (TAT): when the bucket will be full again. Each
request moves it one emission interval (``period / limit``) later; a request that would move
it more than one period past now is refused. So a key may burst up to ``limit`` requests, then
gets one more every ``period / limit`` seconds: no fixed windows, and no double burst at a
window's edge.

The clock is Redis's (``TIME``), not the API's: processes on several hosts with drifting
clocks still agree. Scripts may call ``TIME`` and then write since Redis 5 (effects replication).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from redis.asyncio import Redis

#: KEYS[1]: the key's TAT. ARGV[1]: emission interval, ARGV[2]: period, both in milliseconds.
#: Returns {allowed, ms of budget left (allowed) or ms until the next slot (refused), ms until full}.
GCRA_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local interval = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local new_tat = tat + interval
if new_tat - now > period then
  return {0, tostring(new_tat - period - now), tostring(tat - now)}
end
redis.call('SET', KEYS[1], tostring(new_tat), 'PX', math.ceil(new_tat - now))
return {1, tostring(period - (new_tat - now)), tostring(new_tat - now)}
"""

#: Every bucket lives under this prefix: ``phase6:ratelimit:<key name>``.
KEY_PREFIX = "phase6:ratelimit:"


@dataclass(frozen=True)
class Decision:
    """What the limiter decided for one request, and what to tell the client in headers."""

    allowed: bool
    limit: int
    #: Requests the key may still send right now.
    remaining: int
    #: Seconds until the key's whole budget is back.
    reset_seconds: float
    #: Seconds until the next request would be allowed (0 when this one was).
    retry_after_seconds: float

    def headers(self, period_seconds: float) -> dict[str, str]:
        """The ``RateLimit-*`` headers (IETF draft), and ``Retry-After`` on a refusal.

        Whole seconds, rounded up: a client that waits ``Retry-After`` must not be refused again.
        """
        headers = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(math.ceil(self.reset_seconds)),
            "RateLimit-Policy": f"{self.limit};w={math.ceil(period_seconds)}",
        }
        if not self.allowed:
            headers["Retry-After"] = str(max(1, math.ceil(self.retry_after_seconds)))
        return headers


class RateLimiter:
    """``limit`` requests per ``period_seconds`` for each key name, decided in Redis."""

    def __init__(self, redis: Redis, limit: int, period_seconds: float) -> None:
        self.limit = limit
        self.period_seconds = period_seconds
        self._interval_ms = period_seconds * 1000 / limit
        self._script = redis.register_script(GCRA_SCRIPT)  # EVALSHA, loaded on first use

    async def hit(self, key_name: str) -> Decision:
        """Count one request of ``key_name``; raises ``RedisError`` when Redis does not answer."""
        allowed, first_ms, full_ms = await self._script(
            keys=[KEY_PREFIX + key_name], args=[self._interval_ms, self.period_seconds * 1000]
        )
        full_seconds = float(full_ms) / 1000
        if int(allowed):
            remaining = int(float(first_ms) // self._interval_ms)
            return Decision(True, self.limit, remaining, full_seconds, 0.0)
        return Decision(False, self.limit, 0, full_seconds, float(first_ms) / 1000)
