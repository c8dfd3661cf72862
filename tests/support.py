"""Helpers the tests share: bounded waiting, and talking to a phase's API like a client would."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from phase6_docker.security import hash_key
from shared.models import Task, TaskStatus
from shared.tasks import CATALOG
from tasklab_cli.processes import PHASES, Phase
from tests.tools import require_chromium

if TYPE_CHECKING:
    from playwright.sync_api import Browser

T = TypeVar("T")

TERMINAL = ("completed", "failed", "cancelled")


# ----------------------------------------------------------------------------------------------
# Phase 6: the same system behind API keys and a rate limit

PHASE6 = Phase(6, "phase6_docker", has_worker=True, has_metrics=True, has_pool=True)
#: Every phase a suite can run against, phase 6 included (``tasklab_cli``'s list stops at 5:
#: phase 6 runs under Compose, not ``make run``).
EVERY_PHASE: dict[int, Phase] = {**PHASES, 6: PHASE6}

#: Two clients' keys, as a client holds them; the servers get only their digests.
KEYS = {"alice": "alice-key-0123456789abcdefghijklmnopqrstuv", "bob": "bob-key-0123456789abcdefghijklmnopqrstuvwx"}
#: Phase 6's rate limit, raised for the suites that run on every phase: they send far more than
#: one client would, and the limit has tests of its own (``tests/phase6/test_security.py``).
SUITE_RATE_LIMIT = "100000"


def key_hashes(keys: dict[str, str] = KEYS) -> str:
    """``API_KEY_HASHES`` for ``keys``: ``name:sha256hex`` entries."""
    return ",".join(f"{name}:{hash_key(key)}" for name, key in keys.items())


def bearer(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[name]}"}


def keyed_env(phase: Phase) -> dict[str, str]:
    """What a phase's API needs on top of the suite's environment: phase 6 its keys and a high limit."""
    return {"API_KEY_HASHES": key_hashes(), "RATE_LIMIT_REQUESTS": SUITE_RATE_LIMIT} if phase.number == 6 else {}


def client_headers(phase: Phase) -> dict[str, str]:
    """What every request to a phase's API carries: phase 6 asks for a key, the others for nothing."""
    return bearer("alice") if phase.number == 6 else {}


@dataclass(frozen=True)
class ServedPhase:
    """A phase whose API runs as a real server at ``base_url`` (see ``tests/contract/conftest.py``)."""

    phase: Phase
    base_url: str
    #: What every request carries: phase 6 asks for an API key, the others for nothing.
    headers: dict[str, str] = field(default_factory=dict)


def wait_for(
    predicate: Callable[[], T | None], *, timeout: float = 20.0, interval: float = 0.05, message: str = "condition"
) -> T:
    """Poll ``predicate`` until it returns something truthy (and return it); fail the test after ``timeout`` s.

    Tests wait for a *state*, never for a fixed time: fast machines pass fast, slow ones
    get the whole budget, and a real hang fails with a message instead of a stuck run.
    """
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {message}; last value: {last!r}")


def holds_for(predicate: Callable[[], bool], seconds: float, *, interval: float = 0.1, message: str = "condition") -> None:
    """Check that ``predicate`` stays true for ``seconds`` (looked at every ``interval``); fail at the first lapse.

    The other side of :func:`wait_for`: for what must *not* happen (a process that should be
    gone registering again), watched for a bounded time and failed the moment it does.
    """
    deadline = time.monotonic() + seconds
    while True:
        assert predicate(), f"{message} stopped holding"
        if time.monotonic() >= deadline:
            return
        time.sleep(interval)


def submit(client: httpx.Client, task_type: str, payload: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """POST a task and return its body, asserting it was accepted."""
    response = client.post("/tasks", json={"task_type": task_type, "payload": payload or {}, **extra})
    assert response.status_code == 202, response.text
    task: dict[str, Any] = response.json()
    return task


def wait_for_status(
    client: httpx.Client, task_id: str, statuses: Iterable[str] = TERMINAL, *, timeout: float = 20.0
) -> dict[str, Any]:
    """Poll ``GET /tasks/{id}`` until the task is in one of ``statuses``; return it."""
    wanted = set(statuses)

    def current() -> dict[str, Any] | None:
        task = client.get(f"/tasks/{task_id}").json()
        return task if task.get("status") in wanted else None

    return wait_for(current, timeout=timeout, message=f"task {task_id} to reach {sorted(wanted)}")


def text(raw: bytes | str) -> str:
    """A Redis reply as text (redis-py types its replies ``bytes | str``: it depends on ``decode_responses``)."""
    return raw.decode() if isinstance(raw, bytes) else raw


#: For each task type, a payload and the result it must produce: the catalog's documented
#: examples (tests/shared/test_catalog.py pins a few of them to literal values as well).
EXPECTED_RESULTS: dict[str, tuple[dict[str, Any], Any]] = {
    task_type.value: (definition.example, definition.example_result) for task_type, definition in CATALOG.items()
}


# Prometheus' text format, read like a scraper would (phases 4 on)


def scrape(url: str, headers: dict[str, str] | None = None) -> str:
    """The text of a ``/metrics`` endpoint, once it answers (phase 6's API wants a key: ``headers``)."""

    def fetch() -> httpx.Response | None:
        try:
            response = httpx.get(url, timeout=5, headers=headers)
        except httpx.TransportError:
            return None
        return response if response.status_code == 200 else None

    return wait_for(fetch, timeout=20, message=f"{url} to answer").text


def sample(metrics_text: str, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels``."""
    total = 0.0
    for line in metrics_text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        head, value = line.rsplit(" ", 1)
        if all(f'{key}="{val}"' in head for key, val in labels.items()):
            total += float(value)
    return total


# ----------------------------------------------------------------------------------------------
# The real browser of the browser tests (the phase 4 dashboard, /docs offline)

#: Headless as root, and nothing that would reach for the network on its own.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
#: The only hosts a page under test may load anything from: the app itself.
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})


@contextmanager
def chromium_browser() -> Iterator[Browser]:
    """Debian's Chromium, headless, driven by Playwright (``playwright install`` cannot download a
    browser here). Without Chromium or Playwright the test is skipped with a hint, and fails in CI."""
    executable = require_chromium()
    from playwright.sync_api import sync_playwright  # only where the browser extra is installed

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def stats_disagreements(stats: dict[str, Any], engine: Engine) -> list[str]:
    """Where ``GET /stats``'s counts differ from plain SQL over the task table (phases 4 to 6).

    Counts by status over the whole table; completed, failed and cancelled per type and
    completed per priority over the answer's window: each must equal a ``GROUP BY`` of the rows
    as they are now. An empty list means every count agrees.
    """
    columns = Task.__table__.c  # type: ignore[attr-defined]
    start = datetime.fromisoformat(stats["window_start"].replace("Z", "+00:00"))
    with engine.connect() as connection:
        by_status: dict[str, int] = dict(connection.execute(select(columns.status, func.count()).group_by(columns.status)).all())
        ended = connection.execute(
            select(columns.task_type, columns.status, columns.priority, func.count())
            .where(columns.completed_at >= start)
            .group_by(columns.task_type, columns.status, columns.priority)
        ).all()
    wrong = [
        f"counts[{status.value}]: /stats {stats['counts'][status.value]}, table {by_status.get(status.value, 0)}"
        for status in TaskStatus
        if stats["counts"][status.value] != by_status.get(status.value, 0)
    ]
    outcomes: Counter[tuple[str, str]] = Counter()
    per_priority: Counter[int] = Counter()
    for task_type, status, priority, n in ended:
        outcomes[(task_type, status)] += n
        if status == TaskStatus.COMPLETED.value:
            per_priority[priority] += n
    for entry in stats["task_types"]:
        for outcome in ("completed", "failed", "cancelled"):
            if entry[outcome] != outcomes[(entry["task_type"], outcome)]:
                wrong.append(
                    f"{entry['task_type']} {outcome}: /stats {entry[outcome]}, table {outcomes[(entry['task_type'], outcome)]}"
                )
    for level in stats["priorities"]:
        if level["completed"] != per_priority[level["priority"]]:
            wrong.append(
                f"priority {level['priority']} completed: /stats {level['completed']}, table {per_priority[level['priority']]}"
            )
    return wrong
