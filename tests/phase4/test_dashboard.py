"""The dashboard, in a real browser: headless Chromium opens ``/dashboard`` of a real phase 4 API.

Given an hour of history in the table and a worker running, when tasks are submitted over
HTTP, the page shows what ``/stats`` says within one refresh, links each recent failure to its
task, draws the throughput chart, logs no error in the console, and loads nothing from any host
but the API's (every other request is aborted and recorded: the page must work offline).

Chromium is Debian's (``/usr/bin/chromium``), driven by Playwright; ``playwright install``
cannot download a browser here. Without it the test is skipped with a line saying what to
install, and fails instead in CI (``TASKLAB_REQUIRE_TOOLS=1``, see ``tests/tools.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from phase4_monitoring.monitoring.dashboard import CONTENT_SECURITY_POLICY
from phase4_monitoring.monitoring.stats import THROUGHPUT_MINUTES
from shared.models import Task, TaskStatus, utc_now
from shared.tasks import TaskType
from tasklab_cli.processes import ApiProcess, Phase
from tests.phase4.conftest import PHASE4, WorkerFactory
from tests.phase4.history import seed_last_hour
from tests.support import LOOPBACK_HOSTS, chromium_browser, submit, wait_for, wait_for_status

if TYPE_CHECKING:
    from playwright.sync_api import Browser, ConsoleMessage, Page, Request, Route

#: The browser first: without Chromium the module is skipped (failed in CI) before a server starts.
pytestmark = pytest.mark.usefixtures("browser")

REPO_ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = REPO_ROOT / "docs" / "img" / "phase4-dashboard.png"
VIEWPORT = {"width": 1400, "height": 900}
#: The issue's promise: the page is at most this old.
MAX_REFRESH_MS = 2000
#: Slack on top of one refresh for a loaded 2-core machine (the API answers, the page redraws).
RENDER_SLACK_SECONDS = 3.0
#: Rows of history seeded before the page opens: a chart and percentiles worth a screenshot.
HISTORY_TASKS = 600
STATUSES = [status.value for status in TaskStatus] + ["total"]


@pytest.fixture(scope="module")
def monitoring_phase() -> Phase:
    """Phase 4 only: later phases serve the same page from byte-identical copies of its files,
    which the copy-forward test holds them to, and a browser per phase would only cost time."""
    return PHASE4


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium_browser() as chromium:
        yield chromium


@dataclass
class Dashboard:
    """A browser tab on ``/dashboard``, and everything the page did wrong while open."""

    page: Page
    console_errors: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)

    def refresh_ms(self) -> int:
        return int(self.page.evaluate("REFRESH_MS"))

    def generated_at(self) -> str | None:
        generated_at: str | None = self.page.evaluate("document.body.dataset.generatedAt || null")
        return generated_at

    def wait_for_render(self) -> str:
        """Wait until the page has drawn an answer of /stats; return which (its generated_at)."""
        return wait_for(
            self.generated_at, timeout=self.refresh_ms() / 1000 + RENDER_SLACK_SECONDS, message="the dashboard's first render"
        )

    def wait_for_next_render(self) -> str:
        """Wait until the page has drawn a newer answer than the one it shows now; return it."""
        shown = self.wait_for_render()

        def newer() -> str | None:
            current = self.generated_at()
            return current if current != shown else None

        return wait_for(newer, timeout=self.refresh_ms() / 1000 + RENDER_SLACK_SECONDS, message="a refresh")

    def counts(self) -> dict[str, int]:
        """The status tiles, as the reader sees them (``1,234`` → 1234)."""
        texts: dict[str, str] = self.page.evaluate(
            "(statuses) => Object.fromEntries(statuses.map((s) => [s, document.getElementById(`count-${s}`).textContent]))",
            STATUSES,
        )
        return {status: int(text.replace(",", "")) if text.replace(",", "").isdigit() else -1 for status, text in texts.items()}

    def type_row(self, task_type: str) -> list[str]:
        return self.page.locator(f'#types-body tr[data-task-type="{task_type}"] td').all_inner_texts()


@pytest.fixture
def dashboard(
    browser: Browser, api: ApiProcess, client: httpx.Client, empty_store: Engine, workers: WorkerFactory
) -> Iterator[Dashboard]:
    """Given an hour of history and a worker, the dashboard open in a fresh browser context."""
    seed_last_hour(empty_store, utc_now(), HISTORY_TASKS)
    workers(extra_env={"WORKER_NAME": "worker-1"})  # a readable name for the screenshot
    context = browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
    page = context.new_page()
    board = Dashboard(page)

    def only_loopback(route: Route) -> None:
        if urlsplit(route.request.url).hostname in LOOPBACK_HOSTS:
            route.continue_()
        else:
            board.blocked.append(route.request.url)
            route.abort()

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            board.console_errors.append(message.text)

    def on_failed(request: Request) -> None:
        board.failed_requests.append(f"{request.url}: {request.failure}")

    context.route("**/*", only_loopback)
    page.on("console", on_console)
    page.on("pageerror", lambda error: board.console_errors.append(f"uncaught: {error}"))
    page.on("requestfailed", on_failed)
    page.goto(f"{api.base_url}/dashboard")
    board.wait_for_render()
    yield board
    context.close()


def stats_now(client: httpx.Client) -> dict[str, Any]:
    response = client.get("/stats")
    assert response.status_code == 200, response.text
    stats: dict[str, Any] = response.json()
    return stats


def test_the_page_refreshes_at_least_every_two_seconds(dashboard: Dashboard) -> None:
    assert dashboard.refresh_ms() <= MAX_REFRESH_MS
    first = dashboard.wait_for_render()

    assert dashboard.wait_for_next_render() > first


def test_counts_match_stats_within_one_refresh_after_tasks_run(dashboard: Dashboard, client: httpx.Client) -> None:
    """When tasks are submitted and end, then within one refresh the page shows what /stats says."""
    ids = [submit(client, "noop")["id"] for _ in range(8)] + [submit(client, "fibonacci", {"n": 12})["id"]]
    doomed = [submit(client, "flaky", {"fail_times": 1, "permanent": True})["id"] for _ in range(2)]
    for task_id in ids + doomed:
        wait_for_status(client, task_id)
    expected = stats_now(client)

    def page_matches() -> bool:
        return dashboard.counts() == {status: expected["counts"][status] for status in STATUSES}

    wait_for(
        page_matches,
        timeout=dashboard.refresh_ms() / 1000 + RENDER_SLACK_SECONDS,
        message=f"page counts {dashboard.counts()} to equal /stats",
    )
    assert dashboard.page.locator("#workers-alive").inner_text() == "1"
    assert dashboard.console_errors == []

    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    dashboard.page.screenshot(path=str(SCREENSHOT), full_page=True)
    assert SCREENSHOT.stat().st_size > 0


def test_recent_failures_link_to_their_task(dashboard: Dashboard, client: httpx.Client) -> None:
    doomed = submit(client, "flaky", {"fail_times": 1, "permanent": True})["id"]
    assert wait_for_status(client, doomed)["status"] == "failed"

    link = dashboard.page.locator(f'#failures-body tr[data-task-id="{doomed}"] a')
    wait_for(
        lambda: link.count() == 1,
        timeout=dashboard.refresh_ms() / 1000 + RENDER_SLACK_SECONDS,
        message="the failure to be listed",
    )

    assert link.get_attribute("href") == f"/tasks/{doomed}"
    assert "fails on purpose" in dashboard.page.locator(f'#failures-body tr[data-task-id="{doomed}"]').inner_text()
    link.click()
    dashboard.page.wait_for_url(f"**/tasks/{doomed}")
    assert f'"id":"{doomed}"' in dashboard.page.content().replace(" ", "")


def test_the_chart_draws_one_bar_per_minute_of_the_last_hour(dashboard: Dashboard) -> None:
    minutes = dashboard.page.locator("#throughput-chart g.minute")

    assert minutes.count() == THROUGHPUT_MINUTES
    assert dashboard.page.locator("#throughput-chart rect.bar-completed").count() == THROUGHPUT_MINUTES
    assert "completed" in dashboard.page.locator("#throughput-summary").inner_text()


def test_the_page_loads_nothing_from_elsewhere_and_logs_no_error(dashboard: Dashboard, api: ApiProcess) -> None:
    dashboard.wait_for_next_render()

    assert dashboard.blocked == []
    assert dashboard.failed_requests == []
    assert dashboard.console_errors == []
    assert httpx.get(f"{api.base_url}/dashboard").headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY


#: One consistent reading of the page (JavaScript runs one task at a time, so a render is never
#: half-visible): the instant its figures are for, the window it says, each type's completed count.
TYPE_TABLE_SNAPSHOT = """() => ({
  generatedAt: document.body.dataset.generatedAt,
  hint: document.getElementById("window-hint").textContent,
  completed: Object.fromEntries(
    [...document.querySelectorAll("#types-body tr")].map((row) => [row.dataset.taskType, row.children[1].textContent]),
  ),
})"""


def completed_since(engine: Engine, since: datetime) -> dict[str, int]:
    """Completed tasks per type that ended at or after ``since``, by plain SQL."""
    columns = Task.__table__.c  # type: ignore[attr-defined]
    statement = (
        select(columns.task_type, func.count())
        .where(columns.status == TaskStatus.COMPLETED.value, columns.completed_at >= since)
        .group_by(columns.task_type)
    )
    with engine.connect() as connection:
        return {task_type: int(n) for task_type, n in connection.execute(statement).all()}


def test_choosing_a_window_shows_that_windows_figures(dashboard: Dashboard, empty_store: Engine) -> None:
    """The per-type table is checked against SQL at the page's own instant: no race with the clock."""
    dashboard.page.select_option("#window", "15m")

    def shows_15_minutes() -> dict[str, Any] | None:
        snapshot: dict[str, Any] = dashboard.page.evaluate(TYPE_TABLE_SNAPSHOT)
        return snapshot if snapshot["hint"] == "ended in the last 15 minutes" else None

    snapshot = wait_for(
        shows_15_minutes, timeout=dashboard.refresh_ms() / 1000 + RENDER_SLACK_SECONDS, message="a 15-minute render"
    )
    at = datetime.fromisoformat(snapshot["generatedAt"].replace("Z", "+00:00"))
    # The window starts on the whole minute (the aggregates are kept per minute): 15 minutes back, rounded down.
    expected = completed_since(empty_store, (at - timedelta(minutes=15)).replace(second=0, microsecond=0))

    assert {task_type: int(text.replace(",", "")) for task_type, text in snapshot["completed"].items()} == {
        task_type.value: expected.get(task_type.value, 0) for task_type in TaskType
    }
    assert dashboard.page.evaluate("location.search") == "?window=15m"
    assert dashboard.console_errors == []


def test_a_window_the_page_does_not_offer_falls_back_to_the_default(dashboard: Dashboard, api: ApiProcess) -> None:
    dashboard.page.goto(f"{api.base_url}/dashboard?window=30d")
    dashboard.wait_for_render()

    assert dashboard.page.evaluate("location.search") == "?window=1h"
    assert dashboard.page.locator("#window-hint").inner_text() == "ended in the last hour"
    assert dashboard.console_errors == []
