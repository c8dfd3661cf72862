"""A phase's own app plus two bench-only routes: the floor its ``POST /tasks`` is compared to.

``uvicorn bench.floor_app:phase1_basic`` serves exactly what ``uvicorn phase1_basic.api:app``
serves (the same ``create_app()``: middleware, exception handlers, routes, lifespan opening the
database and Redis) plus, under ``/bench``:

``POST /bench/floor``
    The framework's floor. An ``async`` route that never reads the body and answers a constant
    ``202 {}``: routing, the body-size middleware, uvicorn's HTTP parsing and the response.
    Nothing less can answer a request on this stack.
``POST /bench/validate``
    Everything ``create_task`` does *before* the database: a sync route (so FastAPI's thread
    pool hop, like ``create_task``), the body parsed and validated as ``TaskCreate`` (payload
    checked against its task type) and a validated response model serialized back.

The benchmark sends the same bytes to all three routes, in the same server process, side by
side. ``/tasks`` ÷ ``/bench/floor`` is what the phase costs over the bare framework, and
``/bench/validate`` splits that cost into "FastAPI + pydantic" and "the store and the queue".

The phase folders stay untouched: the routes are added here, to a fresh app, in the server the
benchmark starts. The module attribute named after the phase package is built on first access
(PEP 562 ``__getattr__``), so a server imports only the phase it serves and nothing is built at
import time.
"""

from __future__ import annotations

import importlib
import re

from fastapi import APIRouter, FastAPI, Response, status

from shared.models import TaskCreate

BENCH_PREFIX = "/bench"
FLOOR_PATH = f"{BENCH_PREFIX}/floor"
VALIDATE_PATH = f"{BENCH_PREFIX}/validate"

#: What ``bench.floor_app:<name>`` accepts: a phase package (``phase1_basic``, ``phase2_queue``, …)
#: whose ``api`` module has a ``create_app()``, as every phase's has.
PHASE_PACKAGE = re.compile(r"phase\d+_[a-z0-9_]+")

router = APIRouter(prefix=BENCH_PREFIX, tags=["bench"], include_in_schema=False)


@router.post("/floor", status_code=status.HTTP_202_ACCEPTED)
async def answer_floor() -> Response:
    """Answer at once without reading the body: the least this stack can do for a POST."""
    return Response(content=b"{}", status_code=status.HTTP_202_ACCEPTED, media_type="application/json")


@router.post("/validate", status_code=status.HTTP_202_ACCEPTED, response_model=TaskCreate)
def validate_task(body: TaskCreate) -> TaskCreate:
    """Parse and validate a task like ``POST /tasks`` does, then stop short of storing it."""
    return body


def with_bench_routes(app: FastAPI) -> FastAPI:
    """Add the ``/bench`` routes to an app, after its own: ``/tasks`` is still matched first."""
    app.include_router(router)
    return app


def __getattr__(name: str) -> FastAPI:
    """``bench.floor_app:<phase package>``: that phase's app with the bench routes, built once."""
    if not PHASE_PACKAGE.fullmatch(name):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}; serve a phase package, e.g. phase1_basic")
    app = with_bench_routes(importlib.import_module(f"{name}.api").create_app())
    globals()[name] = app
    return app
