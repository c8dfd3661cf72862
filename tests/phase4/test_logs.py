"""Structured logs with correlation ids: one request id, followed from the API to the worker.

The processes log JSON lines to files (``LOG_FORMAT=json``); the tests read them back the way a
log pipeline would, and every line must parse.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from tasklab_cli.processes import ApiProcess, ManagedProcess
from tests.phase4.conftest import WorkerFactory
from tests.support import submit, wait_for, wait_for_status

REQUEST_ID = "checkout-7f3a.req:42"


def json_lines(process: ManagedProcess) -> list[dict[str, Any]]:
    """Every line the process wrote, parsed; a line that is not JSON fails the test."""
    lines = [line for line in process.log_tail(10**7).splitlines() if line.strip()]
    parsed = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise AssertionError(f"{process.name} wrote a line that is not JSON: {line!r}") from exc
    return parsed


def test_a_valid_request_id_is_returned_unchanged(client: httpx.Client) -> None:
    response = client.get("/health", headers={"X-Request-ID": REQUEST_ID})

    assert response.headers["X-Request-ID"] == REQUEST_ID


def test_a_request_without_an_id_gets_a_fresh_one(client: httpx.Client) -> None:
    first = client.get("/health").headers["X-Request-ID"]
    second = client.get("/health").headers["X-Request-ID"]

    assert len(first) == 32 and first != second


def test_an_unsafe_or_oversized_request_id_is_replaced_not_echoed(client: httpx.Client) -> None:
    for unsafe in ('x"}{"level":"critical"', "a" * 129, "spaces are not allowed", "<script>"):
        response = client.get("/health", headers={"X-Request-ID": unsafe})

        assert response.status_code == 200
        assert response.headers["X-Request-ID"] != unsafe
        assert len(response.headers["X-Request-ID"]) == 32


def test_errors_carry_the_request_id_too(client: httpx.Client) -> None:
    response = client.post("/tasks", json={"task_type": "nope"}, headers={"X-Request-ID": REQUEST_ID})

    assert response.status_code == 422
    assert response.headers["X-Request-ID"] == REQUEST_ID


def test_one_request_id_appears_in_the_api_and_worker_lines_of_its_task(
    client: httpx.Client, api: ApiProcess, workers: WorkerFactory
) -> None:
    worker = workers()
    response = client.post(
        "/tasks", json={"task_type": "flaky", "payload": {"fail_times": 1}}, headers={"X-Request-ID": REQUEST_ID}
    )
    task_id = response.json()["id"]
    assert response.json()["request_id"] == REQUEST_ID

    wait_for_status(client, task_id)
    worker_lines = wait_for(
        lambda: [
            line for line in json_lines(worker.process) if line.get("task_id") == task_id and line["event"] == "attempt ended"
        ][1:],
        message="the second attempt's end in the worker's log",
    )

    accepted = [line for line in json_lines(api) if line["event"] == "task accepted" and line.get("task_id") == task_id]
    assert [line["request_id"] for line in accepted] == [REQUEST_ID]
    for line in json_lines(worker.process):
        if line.get("task_id") == task_id:
            assert line.get("request_id") == REQUEST_ID, line
    assert worker_lines[0]["attempt"] == 2
    assert worker_lines[0]["task_type"] == "flaky"
    assert worker_lines[0]["worker"]


def test_every_line_has_a_utc_timestamp_a_level_and_an_event(
    client: httpx.Client, api: ApiProcess, workers: WorkerFactory
) -> None:
    worker = workers()
    wait_for_status(client, submit(client, "noop")["id"])

    for line in json_lines(api) + json_lines(worker.process):
        assert line["timestamp"].endswith("Z"), line
        assert line["level"] in ("debug", "info", "warning", "error", "critical"), line
        assert line["event"], line
