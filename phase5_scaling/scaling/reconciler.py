"""Phase 3's reconciler over phase 5's five queues, counted: the pool runs it in a thread.

A task re-enqueued by the reconciler goes back to the queue of its priority.
"""

from __future__ import annotations

from redis import Redis
from sqlalchemy.engine import Engine

from ..monitoring.reconciler import monitored_reconciler
from ..recovery.reconciler import Reconciler
from .jobs import enqueue_task, make_queues
from .settings import ScalingSettings


def build_reconciler(engine: Engine, connection: Redis, settings: ScalingSettings, name: str) -> Reconciler:
    """A reconciler for the five priority queues whose repairs land in the metrics."""
    queues = make_queues(connection)
    return monitored_reconciler(
        engine, connection, settings, name, queues=queues, enqueue=lambda task: enqueue_task(queues, task, settings)
    )
