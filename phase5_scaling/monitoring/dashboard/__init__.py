"""``GET /dashboard``: a live page over ``GET /stats``, served by the API itself.

Three static files, read from this package (``static/``), make the whole page: the HTML
skeleton, a stylesheet, and a script that polls ``/stats`` (and ``/tasks?status=failed`` for
the recent failures) every two seconds and draws the throughput chart as SVG by hand.

*Why no chart library, no CDN, no build step?* A monitoring page is opened when things go
wrong, possibly on a machine without internet, and must not depend on a third party to load.
Everything it needs comes from this API, and the Content-Security-Policy header says so to the
browser: a page that tried to load anything from elsewhere would be refused, loudly.
"""

from __future__ import annotations

from enum import StrEnum
from functools import cache
from importlib.resources import files

from fastapi import APIRouter, Response
from fastapi.responses import HTMLResponse

#: Only this API, for everything: scripts, styles, images, and the fetches to /stats and /tasks.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
#: The assets change only with a new release; a browser may keep them for a few minutes.
ASSET_MAX_AGE_SECONDS = 300


class Asset(StrEnum):
    """The files the page loads, and nothing else: a fixed table, never a path from the URL."""

    SCRIPT = "dashboard.js"
    STYLESHEET = "dashboard.css"
    ICON = "favicon.svg"


MEDIA_TYPES: dict[Asset, str] = {
    Asset.SCRIPT: "text/javascript; charset=utf-8",
    Asset.STYLESHEET: "text/css; charset=utf-8",
    Asset.ICON: "image/svg+xml",
}


@cache
def read_static(name: str) -> bytes:
    """One file of ``static/``, read once per process (package data, so it works from a wheel too)."""
    return files(__package__).joinpath("static", name).read_bytes()


router = APIRouter(tags=["monitoring"])


@router.get("/dashboard", response_class=HTMLResponse)
def read_dashboard() -> HTMLResponse:
    """The live dashboard: counts, throughput, failure rates, latencies, queues, workers, recent failures."""
    return HTMLResponse(read_static("index.html"), headers={"Content-Security-Policy": CONTENT_SECURITY_POLICY})


@router.get("/dashboard/assets/{asset}", include_in_schema=False)
def read_dashboard_asset(asset: Asset) -> Response:
    """One of the dashboard's own files (unknown names are a 422 from the enum, never a file lookup)."""
    return Response(
        read_static(asset.value),
        media_type=MEDIA_TYPES[asset],
        headers={"Cache-Control": f"max-age={ASSET_MAX_AGE_SECONDS}", "Content-Security-Policy": CONTENT_SECURITY_POLICY},
    )
