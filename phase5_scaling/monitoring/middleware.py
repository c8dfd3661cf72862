"""Every request, observed: a correlation id, a log line, and the HTTP metrics.

A pure ASGI middleware (not ``@app.middleware("http")``, which buffers responses through an
extra task): it sees the request before any route, and the status after the response started.

*Correlation ids.* The client may send ``X-Request-ID``; a valid one is kept, anything else is
replaced by a fresh id. The id is bound to the log context for the whole request, stored on
``request.state.request_id`` (the API writes it into the task row, so the worker's lines carry
it too), and returned in the response's ``X-Request-ID`` header, errors included.

*Bounded labels.* The ``route`` label is the route's template (``/tasks/{task_id}``), never the
raw path: a label per task id would grow the metrics without bound.
"""

from __future__ import annotations

import time

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .logs import get_logger, new_request_id, valid_request_id
from .metrics import UNMATCHED_ROUTE, TaskMetrics

REQUEST_ID_HEADER = "x-request-id"

log = get_logger(__name__)


class RequestMonitoringMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sent = dict(scope["headers"]).get(REQUEST_ID_HEADER.encode())
        request_id = valid_request_id(sent.decode("latin-1") if sent else None) or new_request_id()
        scope.setdefault("state", {})["request_id"] = request_id
        structlog.contextvars.clear_contextvars()  # nothing from the previous request on this task
        structlog.contextvars.bind_contextvars(request_id=request_id)

        status = 500  # what the client gets if the app raises before it starts a response
        started = time.perf_counter()

        async def send_with_request_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (REQUEST_ID_HEADER.encode(), request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_request_id)
        finally:
            self.observe(scope, status, time.perf_counter() - started)
            structlog.contextvars.clear_contextvars()

    @staticmethod
    def observe(scope: Scope, status: int, seconds: float) -> None:
        route = scope.get("route")
        template = getattr(route, "path", None) or UNMATCHED_ROUTE
        method = scope["method"]
        metrics: TaskMetrics | None = getattr(scope["app"].state, "metrics", None)
        if metrics is not None:  # None only when the app runs without its lifespan (some tests)
            metrics.http_requests.labels(method, template, str(status)).inc()
            metrics.http_duration.labels(method, template).observe(seconds)
        log.info("request", method=method, route=template, status=status, duration_ms=round(seconds * 1000, 3))
