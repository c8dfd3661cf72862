"""Phase 5 API: phase 4's, with each task on the queue of its priority, and a status cache.

The routes, metrics, logs, ``/stats`` and dashboard are phase 4's, unchanged. Two things
differ, both in :mod:`scaling.api` (phase 6 serves the same app): ``POST /tasks`` puts
a task on ``phase5:p<priority>``, so workers take the urgent ones first; and
``GET /tasks/{id}`` reads finished tasks from a Redis cache that cannot go stale.
"""

from __future__ import annotations

from fastapi import FastAPI

from .scaling.api import create_scaling_app


def create_app() -> FastAPI:
    return create_scaling_app(
        title="tasklab · phase 5 (priorities and a worker pool)",
        description="Phase 4's observable queue with five priority levels (highest first, no level "
        "starved), a supervised pool of worker processes, and a status cache in Redis.",
    )


#: Settings, database, Redis, metrics and logs are set up when the server starts, never at import.
app = create_app()
