"""``/docs`` and ``/redoc`` work with no internet: a real browser renders every phase's operations.

FastAPI's default pages load Swagger UI and ReDoc from a CDN, so on an offline machine they are
blank. each phase's ``web.create_base_app`` serves those files from the app itself (the
fastapi-offline package ships them). Here headless Chromium opens each phase's pages on its real
server while every request to a host other than this machine is aborted, which is what being
offline looks like to a browser, and checks that each operation of the phase's OpenAPI schema
is on the page and that the console stays clean.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import httpx
import pytest

from tasklab_cli.processes import PHASES, start_api
from tests.support import LOOPBACK_HOSTS, chromium_browser

if TYPE_CHECKING:
    from playwright.sync_api import Browser, ConsoleMessage, Page, Route

#: The browser first: without Chromium the module is skipped (failed in CI) before a server starts.
pytestmark = pytest.mark.usefixtures("browser")

#: How long a page may take to render its operations (the Swagger UI bundle is 1.5 MB of JavaScript).
RENDER_TIMEOUT_MS = 20_000
#: ReDoc's sidebar footer shows its vendor's logo from this address, hard-wired in redoc.js with
#: no option to turn it off. Offline the image fails and ReDoc hides it; nothing else depends on it.
#: It is the one request allowed to try to leave the machine, and only on /redoc.
REDOC_VENDOR_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"


@pytest.fixture(scope="module")
def backend() -> str:
    """The docs pages never read the database: one backend is enough (overrides the conftest's)."""
    return "sqlite"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium_browser() as browser:
        yield browser


@pytest.fixture(scope="module", params=sorted(PHASES), ids=lambda n: f"phase{n}")
def api_url(request: pytest.FixtureRequest, phase_env: dict[str, str]) -> Iterator[str]:
    """The phase's real API server (no worker: the docs pages run no task)."""
    api = start_api(PHASES[request.param], phase_env)
    yield api.base_url
    api.stop()


class OfflinePage:
    """A browser tab that can reach only this machine, and remembers what went wrong in it."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.blocked: list[str] = []
        self.console_errors: list[str] = []
        page.route("**/*", self._only_loopback)
        page.on("console", self._record_console)
        page.on("pageerror", lambda error: self.console_errors.append(f"uncaught: {error}"))

    def _only_loopback(self, route: Route) -> None:
        if urlsplit(route.request.url).hostname in LOOPBACK_HOSTS:
            route.continue_()
        else:
            self.blocked.append(route.request.url)
            route.abort("internetdisconnected")

    def _record_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.console_errors.append(f"{message.text} ({message.location.get('url', '')})")

    def errors_except(self, allowed_url: str | None = None) -> list[str]:
        return [error for error in self.console_errors if allowed_url is None or allowed_url not in error]


@pytest.fixture
def tab(browser: Browser) -> Iterator[OfflinePage]:
    context = browser.new_context()
    yield OfflinePage(context.new_page())
    context.close()


def documented_operations(api_url: str) -> set[tuple[str, str]]:
    """Every (METHOD, path) the phase's own OpenAPI schema declares."""
    spec = httpx.get(f"{api_url}/openapi.json", timeout=10.0).json()
    return {(method.upper(), path) for path, item in spec["paths"].items() for method in item}


def documented_summaries(api_url: str) -> set[str]:
    spec = httpx.get(f"{api_url}/openapi.json", timeout=10.0).json()
    return {operation["summary"] for item in spec["paths"].values() for operation in item.values()}


def test_swagger_ui_lists_every_operation_offline(api_url: str, tab: OfflinePage) -> None:
    tab.page.goto(f"{api_url}/docs")
    tab.page.wait_for_selector(".opblock-summary-path", timeout=RENDER_TIMEOUT_MS)

    listed = tab.page.eval_on_selector_all(
        ".opblock-summary",
        "blocks => blocks.map(b => [b.querySelector('.opblock-summary-method').textContent,"
        " b.querySelector('.opblock-summary-path').dataset.path])",
    )

    assert {(method, path) for method, path in listed} == documented_operations(api_url)
    assert {("POST", "/tasks"), ("GET", "/tasks/{task_id}"), ("GET", "/tasks")} <= documented_operations(api_url)
    assert tab.blocked == []
    assert tab.errors_except() == []


def test_redoc_renders_every_operation_offline(api_url: str, tab: OfflinePage) -> None:
    tab.page.goto(f"{api_url}/redoc")
    tab.page.wait_for_selector("h2", timeout=RENDER_TIMEOUT_MS)

    headings = {text.strip() for text in tab.page.eval_on_selector_all("h2", "hs => hs.map(h => h.textContent)")}
    paths = tab.page.eval_on_selector_all("span", "spans => spans.map(s => s.textContent)")

    assert documented_summaries(api_url) <= headings
    assert {path for _, path in documented_operations(api_url)} <= set(paths)
    assert set(tab.blocked) <= {REDOC_VENDOR_LOGO}
    assert tab.errors_except(allowed_url=REDOC_VENDOR_LOGO) == []
