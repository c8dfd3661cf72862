"""The task catalog: every handler is a pure function of its validated payload."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from shared.models import TaskCreate
from shared.tasks import CATALOG, PermanentTaskError, TaskContext, TaskType, TransientTaskError, run_task
from tests.support import EXPECTED_RESULTS

INSTANT = TaskContext(time_scale=0)


def test_the_documented_examples_include_the_design_figures() -> None:
    assert EXPECTED_RESULTS["fibonacci"] == ({"n": 10}, 55)
    assert EXPECTED_RESULTS["compute"] == ({"n": 1_000_000}, 499_999_500_000)
    assert EXPECTED_RESULTS["text_processing"][1]["word_count"] == 9


@pytest.mark.parametrize("task_type", sorted(EXPECTED_RESULTS))
def test_handler_produces_its_documented_example_result(task_type: str) -> None:
    payload, expected = EXPECTED_RESULTS[task_type]
    assert run_task(task_type, payload, INSTANT) == expected


@pytest.mark.parametrize("task_type", list(TaskType))
def test_every_catalog_example_is_a_valid_request(task_type: TaskType) -> None:
    TaskCreate(task_type=task_type, payload=CATALOG[task_type].example)


def test_fibonacci_of_10_is_55_and_compute_default_is_499999500000() -> None:
    assert run_task("fibonacci", {"n": 10}, INSTANT) == 55
    assert run_task("compute", {}, INSTANT) == 499_999_500_000


def test_batch_processing_reports_progress_up_to_100() -> None:
    seen: list[int] = []
    run_task(
        "batch_processing", {"items": list(range(10)), "batch_size": 3}, TaskContext(time_scale=0, report_progress=seen.append)
    )
    assert seen == [25, 50, 75, 100]


def test_flaky_fails_its_first_k_attempts_then_succeeds() -> None:
    for attempt in (1, 2):
        with pytest.raises(TransientTaskError, match=f"attempt {attempt} fails"):
            run_task("flaky", {"fail_times": 2}, TaskContext(attempt=attempt, time_scale=0))
    assert run_task("flaky", {"fail_times": 2}, TaskContext(attempt=3, time_scale=0)) == {"succeeded_on_attempt": 3}


def test_flaky_can_fail_permanently() -> None:
    with pytest.raises(PermanentTaskError):
        run_task("flaky", {"fail_times": 1, "permanent": True}, INSTANT)


def test_a_stored_payload_that_no_longer_validates_is_a_permanent_error() -> None:
    with pytest.raises(PermanentTaskError, match="invalid fibonacci task"):
        run_task("fibonacci", {"n": "ten"}, INSTANT)


def test_request_validation_names_the_payload_problem() -> None:
    with pytest.raises(ValidationError, match="invalid payload for fibonacci: n:"):
        TaskCreate(task_type=TaskType.FIBONACCI, payload={"n": -5})
