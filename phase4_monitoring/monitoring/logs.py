"""One structured-log pipeline for the API, the workers, the reconciler, uvicorn and RQ.

Every line is a JSON object on stdout (a readable console rendering when stdout is a terminal)
with ``timestamp`` (ISO 8601, UTC), ``level`` and ``event``, and, where they apply,
``request_id``, ``task_id``, ``task_type``, ``attempt`` and ``worker``. Those come from
*context variables* bound once where the context begins (a request arrives, a worker picks up
a task) rather than passed to every call: a line logged deep inside RQ or SQLAlchemy's caller
carries them too.

Our own lines never pass through the standard :mod:`logging` module: structlog renders them
and writes them to stdout itself, which costs a fraction of a ``LogRecord``'s trip through
loggers, handlers and a formatter (the API logs two lines per request, a worker two per task).
Libraries log through :mod:`logging`; structlog's ``ProcessorFormatter`` runs their records
through the same steps, so uvicorn's and RQ's lines come out in the same shape.
"""

from __future__ import annotations

import logging
import re
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

import structlog

LogFormat = Literal["auto", "json", "console"]

#: What a client may send as ``X-Request-ID``: short, and only characters that cannot break a
#: log line or a header. Anything else is replaced by an id of our own, never echoed back.
REQUEST_ID_PATTERN = re.compile(r"[A-Za-z0-9._:/+=-]{1,128}")

#: Loggers that configure their own handlers; we take them over so their lines share our format.
LIBRARY_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "rq", "rq.worker", "rq.scheduler")

#: RQ's own "Worker w: queue: job-id" line when it dequeues a job (with ``log_job_description``
#: off). It carries no task fields, so workers drop it and log "task dequeued" with the task's
#: context instead.
RQ_DEQUEUE_MESSAGE = "Worker %s: %s: %s"

#: The context keys a task's log lines carry (bound in the worker, cleared after the task).
TASK_CONTEXT_KEYS = ("task_id", "task_type", "attempt", "worker", "request_id")


def valid_request_id(candidate: str | None) -> str | None:
    """The client's request id if it is safe to log and echo, else ``None``."""
    if candidate and REQUEST_ID_PATTERN.fullmatch(candidate):
        return candidate
    return None


def new_request_id() -> str:
    return uuid.uuid4().hex


class NamedWriteLogger(structlog.WriteLogger):
    """structlog's writer to stdout, with a ``name``: ``add_logger_name`` reads it, as it reads a stdlib logger's."""

    def __init__(self, name: str) -> None:
        super().__init__(sys.stdout)  # the stdout of when the logger is first used, as a StreamHandler's
        self.name = name

    @classmethod
    def for_name(cls, *args: Any) -> NamedWriteLogger:
        """The logger factory: ``get_logger(name)`` passes the name on."""
        return cls(str(args[0]) if args else "")


def configure_logging(level: str = "INFO", log_format: LogFormat = "auto") -> None:
    """Route structlog and the standard library through one pipeline to stdout.

    Called once where a process starts (the API's lifespan, a worker's ``main``), never at
    import: six phases share one pytest process, and only phase 4 on wants this.
    """
    render_json = log_format == "json" or (log_format == "auto" and not sys.stdout.isatty())
    timestamper = structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp")
    renderer: Any = structlog.processors.JSONRenderer() if render_json else structlog.dev.ConsoleRenderer()
    # A traceback becomes one "exception" field, so the line stays one JSON object.
    rendering = [structlog.processors.format_exc_info, renderer]
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.stdlib.add_logger_name,
            timestamper,
            *rendering,
        ],
        # Below the level, a call returns at once: no event dict is built for a line nobody reads.
        wrapper_class=structlog.make_filtering_bound_logger(level.upper()),
        logger_factory=NamedWriteLogger.for_name,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.stdlib.ExtraAdder(),
            timestamper,
        ],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *rendering],
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level.upper())
    for name in LIBRARY_LOGGERS:
        library = logging.getLogger(name)
        library.handlers = []
        library.propagate = True
    # The API's middleware logs every request with its route, status, duration and request id;
    # uvicorn's access line would say the same thing twice, with less.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)


class DropRQDequeueLine(logging.Filter):
    """Drops RQ's dequeue line; the worker logs one with the task's whole context instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.msg != RQ_DEQUEUE_MESSAGE


def replace_rq_dequeue_line() -> None:
    """Install :class:`DropRQDequeueLine` on RQ's worker logger (a worker sets ``log_job_description = False``)."""
    logging.getLogger("rq.worker").addFilter(DropRQDequeueLine())


def bind_task_context(**context: object) -> None:
    """Attach task fields to every line this process logs until :func:`clear_task_context`."""
    structlog.contextvars.bind_contextvars(**{key: value for key, value in context.items() if value is not None})


def clear_task_context() -> None:
    structlog.contextvars.unbind_contextvars(*TASK_CONTEXT_KEYS)


@contextmanager
def job_log_context(job: Any, worker: str, queue: str, *, announce: bool = True) -> Iterator[None]:
    """Every line logged while a worker handles ``job`` names its task, RQ's lines included.

    The task's type and request id come from the job's ``meta`` (copied there at enqueue time),
    so they are known before the row is read. Cleared afterwards: a worker that runs many jobs
    in one process must not lend one task's id to the next job's lines. Without ``announce``,
    no "task dequeued" line: the queue is then a field of every line instead.
    """
    bind_task_context(task_id=job.id, task_type=job.meta.get("task_type"), request_id=job.meta.get("request_id"), worker=worker)
    if not announce:
        structlog.contextvars.bind_contextvars(queue=queue)
    try:
        if announce:
            get_logger(__name__).info("task dequeued", queue=queue)
        yield
    finally:
        clear_task_context()
        structlog.contextvars.unbind_contextvars("queue")


def get_logger(name: str) -> structlog.typing.FilteringBoundLogger:
    """A logger whose lines carry ``logger=name``, as the libraries' lines carry their logger's name."""
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger(name)
    return logger
