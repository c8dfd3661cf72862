"""Chapter 2, exercises 1 and 2: what /ready says is down, and what a job carries."""

from __future__ import annotations

import httpx
from redis import Redis
from rq.job import Job
from rq.serializers import JSONSerializer


def down_dependencies(client: httpx.Client) -> list[str]:
    """The names of what ``/ready`` reports down (``[]`` when ready), for a deploy script."""
    response = client.get("/ready")
    checks: dict[str, str] = response.json()["checks"]
    down = sorted(name for name, state in checks.items() if state != "ok")
    assert (response.status_code == 200) == (not down), response.text
    return down


def job_call(connection: Redis, task_id: str) -> tuple[str | None, list[object]]:
    """The function a task's job names and its arguments, read back from Redis as RQ stores them."""
    job = Job.fetch(task_id, connection=connection, serializer=JSONSerializer)
    return job.func_name, list(job.args)
