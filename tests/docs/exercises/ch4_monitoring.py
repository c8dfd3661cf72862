"""Chapter 4, exercises 1 and 2: read a counter from /metrics, and follow a request id."""

from __future__ import annotations

from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families


def submitted(metrics_text: str, task_type: str) -> float:
    """How many ``task_type`` tasks the API accepted, summed over priorities, from its /metrics."""
    total = 0.0
    for family in text_string_to_metric_families(metrics_text):
        if family.name != "tasklab_tasks_submitted":
            continue
        total += sum(s.value for s in family.samples if s.name.endswith("_total") and s.labels.get("task_type") == task_type)
    return total


def submit_with_request_id(client: httpx.Client, request_id: str) -> tuple[str, dict[str, Any]]:
    """Submit a task under ``request_id``; return the id the API answered with, and the stored task."""
    response = client.post("/tasks", json={"task_type": "noop", "payload": {}}, headers={"X-Request-ID": request_id})
    response.raise_for_status()
    task = client.get(response.headers["Location"]).raise_for_status().json()
    return response.headers["X-Request-ID"], task
