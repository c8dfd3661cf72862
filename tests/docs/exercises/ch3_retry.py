"""Chapter 3, exercises 1 and 2: a retry policy for one task type, and its worst-case wait."""

from __future__ import annotations

import json

from phase3_retry.recovery.backoff import backoff_intervals
from phase3_retry.recovery.settings import RetryPolicy

#: Exercise 1: `flaky` gets 6 attempts, waits from 2 s doubling up to 10 s; other types keep the defaults.
FLAKY_POLICY_ENVIRONMENT = {
    "TASK_POLICIES": json.dumps({"flaky": {"max_attempts": 6, "backoff_base_seconds": 2, "backoff_cap_seconds": 10}}),
}


def worst_case_wait(policy: RetryPolicy) -> int:
    """Exercise 2: the longest a task can spend waiting between attempts, in seconds.

    Jitter only shortens a wait, so the longest total is the unjittered one.
    """
    return sum(
        backoff_intervals(
            policy.max_attempts - 1,
            base=policy.backoff_base_seconds,
            factor=policy.backoff_factor,
            cap=policy.backoff_cap_seconds,
        )
    )
