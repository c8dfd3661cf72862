"""``python -m phase6_docker.verify --url URL --api-key KEY``: check a running deployment end to end.

Run it against any stack (the Compose one, a staging host, a laptop) after a deploy. It talks
to the API like a client, from outside, and proves what an operator needs to know:

1. ``/health`` answers without a key, ``/ready`` says PostgreSQL and Redis answer;
2. without a key (or with a wrong one) the API answers 401 with a ``WWW-Authenticate`` challenge;
3. every task type of the catalog, submitted at the lowest, middle and highest priority,
   completes with its documented result (so the workers run, at every level);
4. with ``--check-rate-limit``: pushing ``POST /tasks`` past the key's limit gets 429 with
   ``Retry-After`` (the pushes carry an invalid body, so no task is created; the key's budget
   is spent for a while: use a key of its own);
5. with ``--prometheus-url``: every scrape target is up, at least one worker among them, and the
   tasks this run completed are in ``tasklab_tasks_finished_total``.

It prints one line per check and a table, and exits 0 only when every check holds (1 otherwise,
2 on bad arguments).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from shared.tasks import CATALOG

#: Lowest, middle and highest: a worker must serve every level, not only the top one.
PRIORITIES = (1, 3, 5)
#: The rate-limit push stops after twice the advertised limit and this many more, whatever happens.
RATE_LIMIT_SLACK = 10
#: How often a waiting check asks again.
POLL_SECONDS = 0.5


class CheckFailed(Exception):
    """A check did not hold; the message says what was seen instead."""


@dataclass
class Outcome:
    name: str
    passed: bool
    detail: str
    seconds: float


@dataclass
class Verifier:
    """The checks, in order, against one deployment; each records an :class:`Outcome`."""

    client: httpx.Client
    api_key: str
    timeout: float
    console: Console
    outcomes: list[Outcome] = field(default_factory=list)
    completed: int = 0

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    def run(self, name: str, check: Callable[[], str]) -> bool:
        """Run one check; a transport error or an unexpected answer fails it, never the whole run."""
        started = time.monotonic()
        try:
            detail, passed = check(), True
        except (CheckFailed, httpx.HTTPError, ValueError, KeyError) as exc:
            detail, passed = f"{type(exc).__name__}: {exc}" if not isinstance(exc, CheckFailed) else str(exc), False
        outcome = Outcome(name, passed, detail, time.monotonic() - started)
        self.outcomes.append(outcome)
        mark = "[green]✓[/]" if passed else "[red]✗[/]"
        self.console.print(f"{mark} {name}: {detail}", highlight=False, soft_wrap=True)  # one line per check, even in a pipe
        return passed

    # -- the checks ---------------------------------------------------------------------------

    def health(self) -> str:
        # Right after `docker compose up -d` the API may still be starting (or waiting for its
        # stores): keep asking until --timeout, so verify can follow `up` in a script.
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                response = self.client.get("/health")
                ready = self.client.get("/ready", headers=self.auth)
                # 503: a store is not reachable yet. Any other answer (401 for a wrong key) is final.
                starting = response.status_code != 200 or ready.status_code == 503
                if not starting or time.monotonic() > deadline:
                    break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
            time.sleep(POLL_SECONDS)
        expect(response.status_code == 200, f"GET /health answered {response.status_code}")
        expect(ready.status_code == 200, f"GET /ready answered {ready.status_code}: {ready.text[:200]}")
        return f"/health 200 without a key; /ready 200: {ready.json().get('checks')}"

    def authentication(self) -> str:
        for headers, label in (({}, "no key"), ({"Authorization": "Bearer wrong-key"}, "a wrong key")):
            refused = self.client.get("/stats", headers=headers)
            expect(refused.status_code == 401, f"GET /stats with {label} answered {refused.status_code}, not 401")
            expect("Bearer" in refused.headers.get("WWW-Authenticate", ""), f"401 for {label} has no WWW-Authenticate: Bearer")
        for path in ("/metrics", "/dashboard"):
            status = self.client.get(path).status_code
            expect(status == 401, f"GET {path} without a key answered {status}, not 401")
        accepted = self.client.get("/stats", headers=self.auth)
        expect(accepted.status_code == 200, f"GET /stats with the key answered {accepted.status_code}")
        return "401 with WWW-Authenticate without a key or with a wrong one (/stats, /metrics, /dashboard); 200 with the key"

    def tasks(self) -> str:
        submitted: dict[str, tuple[str, int, Any]] = {}
        for task_type, definition in CATALOG.items():
            for priority in PRIORITIES:
                body = {"task_type": task_type.value, "payload": definition.example, "priority": priority}
                response = self.client.post("/tasks", json=body, headers=self.auth)
                expect(
                    response.status_code == 202,
                    f"POST /tasks ({task_type.value}) answered {response.status_code}: {response.text[:200]}",
                )
                submitted[response.json()["id"]] = (task_type.value, priority, definition.example_result)
        deadline = time.monotonic() + self.timeout
        waiting = dict(submitted)
        while waiting and time.monotonic() < deadline:
            for task_id in list(waiting):
                task = self.client.get(f"/tasks/{task_id}", headers=self.auth).json()
                type_name, priority, expected = waiting[task_id]
                if task["status"] in ("failed", "cancelled"):
                    raise CheckFailed(f"{type_name} at priority {priority} ended {task['status']}: {task.get('error')}")
                if task["status"] == "completed":
                    expect(task["result"] == expected, f"{type_name} returned {task['result']!r}, documented {expected!r}")
                    del waiting[task_id]
            if waiting:
                time.sleep(POLL_SECONDS)
        if waiting:
            names = sorted({type_name for type_name, _, _ in waiting.values()})
            raise CheckFailed(
                f"{len(waiting)} of {len(submitted)} tasks not completed within {self.timeout:g} s ({', '.join(names)})"
            )
        self.completed = len(submitted)
        return f"{len(submitted)} tasks ({len(CATALOG)} types × priorities {PRIORITIES}) completed with their documented results"

    def rate_limit(self) -> str:
        first = self.client.post("/tasks", json={}, headers=self.auth)  # an invalid body: counted, never stored
        limit = first.headers.get("RateLimit-Limit")
        expect(limit is not None, f"POST /tasks answered {first.status_code} without RateLimit-Limit")
        assert limit is not None
        # The bucket refills while we push (GCRA: one slot every period / limit), so allow for
        # twice the limit: a client far slower than the refill rate could never be refused anyway.
        most = 2 * int(limit) + RATE_LIMIT_SLACK
        for sent in range(2, most + 1):
            response = self.client.post("/tasks", json={}, headers=self.auth)
            if response.status_code == 429:
                retry_after = response.headers.get("Retry-After")
                expect(retry_after is not None and int(retry_after) >= 1, "429 without a Retry-After of 1 s or more")
                expect(response.headers.get("RateLimit-Remaining") == "0", "429 whose RateLimit-Remaining is not 0")
                return f"429 after {sent} requests (limit {limit}); Retry-After {retry_after} s"
            expect(response.status_code == 422, f"an invalid body answered {response.status_code}, not 422 or 429")
        raise CheckFailed(f"no 429 after {most} requests against a limit of {limit}")

    def prometheus(self, url: str) -> str:
        deadline = time.monotonic() + self.timeout
        last = "no answer yet"
        with httpx.Client(base_url=url, timeout=10) as prometheus:
            while time.monotonic() < deadline:
                try:
                    last = self._prometheus_state(prometheus)
                except CheckFailed as exc:
                    last = str(exc)
                else:
                    return last
                time.sleep(POLL_SECONDS * 2)
        raise CheckFailed(f"after {self.timeout:g} s: {last}")

    def _prometheus_state(self, prometheus: httpx.Client) -> str:
        targets = prometheus.get("/api/v1/targets", params={"state": "active"}).json()["data"]["activeTargets"]
        jobs = sorted(target["labels"]["job"] for target in targets)
        down = [
            f"{t['labels']['job']} {t['scrapeUrl']}: {t.get('lastError') or t['health']}" for t in targets if t["health"] != "up"
        ]
        expect(not down, f"targets not up: {'; '.join(down)}")
        expect("api" in jobs and "worker" in jobs, f"targets are {jobs}: expected the api and at least one worker")
        finished = query(prometheus, 'sum(tasklab_tasks_finished_total{outcome="completed"})')
        expect(
            finished >= self.completed,
            f"tasklab_tasks_finished_total{{outcome=completed}} is {finished:g}, below {self.completed}",
        )
        for metric in (
            "tasklab_tasks_submitted_total",
            "tasklab_queue_depth",
            "tasklab_workers_alive",
            "tasklab_http_requests_total",
        ):
            expect(prometheus.get("/api/v1/query", params={"query": metric}).json()["data"]["result"], f"{metric} has no series")
        workers = jobs.count("worker")
        return f"{len(targets)} targets up (api, {workers} worker{'s' * (workers != 1)}); completed tasks counted: {finished:g}"

    # -- the report ----------------------------------------------------------------------------

    def report(self) -> bool:
        table = Table(title="tasklab deployment check")
        table.add_column("check")
        table.add_column("result")
        table.add_column("seconds", justify="right")
        for outcome in self.outcomes:
            table.add_row(outcome.name, "[green]passed[/]" if outcome.passed else "[red]FAILED[/]", f"{outcome.seconds:.1f}")
        self.console.print(table)
        passed = all(outcome.passed for outcome in self.outcomes)
        self.console.print("[green]every check passed[/]" if passed else "[red]some checks failed[/]")
        return passed


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


def query(prometheus: httpx.Client, promql: str) -> float:
    """The value of a PromQL query that yields one number (0 when it yields nothing)."""
    result = prometheus.get("/api/v1/query", params={"query": promql}).json()["data"]["result"]
    return float(result[0]["value"][1]) if result else 0.0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m phase6_docker.verify",
        description="Check a running tasklab deployment from outside: health, keys, every task type, the rate limit, Prometheus.",
        epilog="Exit status: 0 every check passed, 1 a check failed, 2 bad arguments.",
    )
    parser.add_argument("--url", required=True, help="the API's base URL, e.g. http://127.0.0.1:8000")
    parser.add_argument("--api-key", required=True, help="a valid API key (its rate-limit budget is spent by --check-rate-limit)")
    parser.add_argument("--check-rate-limit", action="store_true", help="push POST /tasks past the key's limit and expect 429")
    parser.add_argument("--prometheus-url", help="Prometheus's base URL: check that it scrapes the API and the workers")
    parser.add_argument(
        "--timeout", type=float, default=120.0, help="seconds to wait for the tasks and for Prometheus (default 120)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console()
    console.rule(f"tasklab verify · {args.url}")
    with httpx.Client(base_url=args.url, timeout=10) as client:
        verifier = Verifier(client, args.api_key, args.timeout, console)
        verifier.run("health and readiness", verifier.health)
        verifier.run("API keys", verifier.authentication)
        verifier.run("every task type at several priorities", verifier.tasks)
        if args.prometheus_url:
            verifier.run("metrics in Prometheus", lambda: verifier.prometheus(args.prometheus_url))
        if args.check_rate_limit:  # last: it spends the key's budget
            verifier.run("rate limit", verifier.rate_limit)
    return 0 if verifier.report() else 1


if __name__ == "__main__":
    sys.exit(main())
