"""The retry arithmetic, as pure functions: backoff waits, per-type policies, the retry decision."""

from __future__ import annotations

import random

import pytest

from phase3_retry.recovery.attempts import retry_for, should_retry
from phase3_retry.recovery.backoff import backoff_intervals
from phase3_retry.recovery.settings import RecoverySettings
from shared.tasks import PermanentTaskError, TransientTaskError


def test_waits_double_from_the_base_until_the_cap() -> None:
    assert backoff_intervals(8, base=1, factor=2, cap=60) == [1, 2, 4, 8, 16, 32, 60, 60]


def test_jitter_only_shortens_a_wait_and_by_at_most_its_fraction() -> None:
    plain = backoff_intervals(10, base=4, factor=2, cap=300)
    jittered = backoff_intervals(10, base=4, factor=2, cap=300, jitter=0.5, rng=random.Random(7))

    for full, wait in zip(plain, jittered, strict=True):
        assert full / 2 - 0.5 <= wait <= full  # rounding to whole seconds moves it by 0.5 at most


def test_jitter_spreads_tasks_that_failed_together() -> None:
    """A hundred tasks failing in the same outage do not all come back in the same second."""
    fifth_waits = {backoff_intervals(5, base=1, cap=60, jitter=0.5, rng=random.Random(seed))[4] for seed in range(100)}

    assert len(fifth_waits) >= 5


def test_the_same_seed_gives_the_same_waits() -> None:
    first = backoff_intervals(6, base=1, cap=60, jitter=0.5, rng=random.Random(42))
    second = backoff_intervals(6, base=1, cap=60, jitter=0.5, rng=random.Random(42))

    assert first == second


def test_a_one_second_wait_never_rounds_down_to_an_instant_retry() -> None:
    waits = [backoff_intervals(1, base=1, jitter=1.0, rng=random.Random(seed))[0] for seed in range(50)]

    assert min(waits) == 1


def test_a_zero_base_means_immediate_retries() -> None:
    assert backoff_intervals(3, base=0, cap=60) == [0, 0, 0]


@pytest.mark.parametrize("bad", [{"retries": -1}, {"jitter": 1.5}])
def test_nonsense_arguments_are_refused(bad: dict[str, float]) -> None:
    arguments = {"retries": 2, "base": 1, "jitter": 0.0, **bad}

    with pytest.raises(ValueError):
        backoff_intervals(int(arguments.pop("retries")), **arguments)  # type: ignore[arg-type]


def test_a_task_type_override_replaces_only_what_it_names() -> None:
    settings = RecoverySettings(
        retry_max_attempts=5,
        job_timeout_seconds=600,
        task_policies={"compute": {"timeout_seconds": 30}},  # type: ignore[dict-item]
    )

    compute, noop = settings.policy_for("compute"), settings.policy_for("noop")

    assert (compute.timeout_seconds, compute.max_attempts) == (30, 5)
    assert (noop.timeout_seconds, noop.max_attempts) == (600, 5)


def test_policies_are_read_from_json_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASK_POLICIES", '{"flaky": {"max_attempts": 2, "backoff_base_seconds": 0}}')

    policy = RecoverySettings().policy_for("flaky")

    assert (policy.max_attempts, policy.backoff_base_seconds) == (2, 0)


def test_rq_retry_carries_the_remaining_attempts_and_their_waits() -> None:
    policy = RecoverySettings(retry_max_attempts=5, retry_backoff_jitter=0).policy_for("noop")

    fresh, half_way, last = retry_for(policy, 0), retry_for(policy, 2), retry_for(policy, 4)

    assert fresh is not None and (fresh.max, fresh.intervals) == (4, [1, 2, 4, 8])
    assert half_way is not None and (half_way.max, half_way.intervals) == (2, [4, 8])
    assert last is None  # the next attempt is the fifth and last: nothing to retry after it


def test_a_transient_error_is_retried_until_the_last_attempt() -> None:
    policy = RecoverySettings(retry_max_attempts=3).policy_for("flaky")

    assert should_retry(TransientTaskError("boom"), 1, policy)
    assert should_retry(TimeoutError("slow"), 2, policy)
    assert not should_retry(TransientTaskError("boom"), 3, policy)


def test_a_permanent_error_is_never_retried() -> None:
    policy = RecoverySettings(retry_max_attempts=3).policy_for("flaky")

    assert not should_retry(PermanentTaskError("bad payload"), 1, policy)
