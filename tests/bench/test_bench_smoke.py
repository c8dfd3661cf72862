"""``python -m bench --quick`` runs end to end: every measurement is printed and the drain finishes.

Speed is measured by the benchmark, never asserted here: a loaded CI machine must not fail a
test for being slow. What is checked is that the machinery works: real servers start, the load
gets answers, the floor routes exist, the JSON carries each figure, and every drained task ends
``completed``. Four concurrent clients keep the servers' CPU use small beside other tests.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SMOKE_TIMEOUT_SECONDS = 150
DRAIN_TASKS = 12
DRAIN_WORKERS = (1, 2)
#: Phase 3 and phase 4 drained side by side: their ratio is what monitoring costs.
DRAIN_PHASES = (3, 4)
#: A small table for part (c), yet deeper than the deepest offset the API accepts (10,000), so
#: that every query has a page to read.
LIST_ROWS = 12_000


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """One quick run of the whole benchmark in its own process, as ``make bench`` would run it."""
    json_path = tmp_path_factory.mktemp("bench") / "figures.json"
    command = [
        sys.executable, "-m", "bench", "--quick",
        "--phases", "1,2",
        "--requests", "40", "--warmup", "5", "--concurrency", "4",
        "--drain-tasks", str(DRAIN_TASKS), "--drain-workers", ",".join(map(str, DRAIN_WORKERS)),
        "--drain-phases", ",".join(map(str, DRAIN_PHASES)),
        "--list-rows", str(LIST_ROWS), "--list-repeats", "3",
        "--json", str(json_path),
    ]  # fmt: skip
    completed = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=SMOKE_TIMEOUT_SECONDS)
    assert json_path.exists(), f"no JSON written; stdout:\n{completed.stdout}\nstderr:\n{completed.stderr}"
    return completed, json.loads(json_path.read_text())


def test_the_run_succeeds(bench_run: tuple[subprocess.CompletedProcess[str], dict[str, Any]]) -> None:
    completed, figures = bench_run
    assert completed.returncode == 0, f"{completed.stdout}\n{completed.stderr}"
    assert figures["ok"] is True
    assert figures["failures"] == []


def test_the_table_lists_each_route_against_the_floor(bench_run: tuple[subprocess.CompletedProcess[str], dict[str, Any]]) -> None:
    completed, figures = bench_run
    for route in ("POST /bench/floor", "POST /bench/validate", "POST /tasks"):
        assert route in completed.stdout
    rows = {(row["phase"], row["route"]): row for row in figures["submit"]}
    assert set(rows) == {(phase, route) for phase in (1, 2) for route in ("POST /bench/floor", "POST /bench/validate", "POST /tasks")}
    for row in rows.values():
        assert row["requests"] > 0 and row["errors"] == 0
        assert row["requests_per_second"] > 0 and row["p50_ms"] > 0 and row["p99_ms"] >= row["p50_ms"]
        assert row["single_client_requests"] > 0
    assert rows[(1, "POST /tasks")]["throughput_x_floor"] > 0
    assert rows[(2, "POST /tasks")]["throughput_x_floor"] > 0


def test_every_accepted_task_was_stored_then_run_or_queued(bench_run: tuple[subprocess.CompletedProcess[str], dict[str, Any]]) -> None:
    """Phase 1 ran each task in the API process; phase 2, with no worker, left each one queued."""
    _, figures = bench_run
    phase1, phase2 = sorted(figures["submit_store"], key=lambda store: store["phase"])
    assert phase1["accepted"] > 0 and phase1["stored"] == phase1["accepted"] == phase1["completed"]
    assert phase2["accepted"] > 0 and phase2["stored"] == phase2["accepted"] == phase2["queued"]


def test_the_drain_completes_every_task_with_1_and_2_workers(bench_run: tuple[subprocess.CompletedProcess[str], dict[str, Any]]) -> None:
    completed, figures = bench_run
    assert "(b) drain" in completed.stdout
    assert [(row["phase"], row["workers"]) for row in figures["drain"]] == [(p, w) for p in DRAIN_PHASES for w in DRAIN_WORKERS]
    for row in figures["drain"]:
        assert row["completed"] == row["tasks"] == DRAIN_TASKS and row["failed"] == 0
        assert row["all_completed"] is True
        assert row["tasks_per_second"] > 0


def test_phase_4_is_priced_against_phase_3_in_the_same_run(bench_run: tuple[subprocess.CompletedProcess[str], dict[str, Any]]) -> None:
    completed, figures = bench_run
    assert set(figures["monitoring_overhead"]) == {f"drain rate, {w} worker(s), steady" for w in DRAIN_WORKERS}
    assert "monitoring (phase 4 vs phase 3)" in completed.stdout


def test_the_list_queries_are_timed_on_a_seeded_table(bench_run: tuple[subprocess.CompletedProcess[str], dict[str, Any]]) -> None:
    """Part (c): every query ran on SQLite (and PostgreSQL when TEST_DATABASE_URL is set) and read a page."""
    completed, figures = bench_run
    assert "(c) GET /tasks" in completed.stdout
    sqlite_rows = [row for row in figures["listing"] if row["database"] == "sqlite"]
    assert sqlite_rows and all(row["rows"] == LIST_ROWS for row in sqlite_rows)
    for row in figures["listing"]:
        assert row["runs"] == 3 and row["median_ms"] > 0 and row["total"] > 0
        assert row["page_items"] > 0 or row["query"].startswith("exact COUNT")
