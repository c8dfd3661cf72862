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

from tests.tools import require_module

REPO_ROOT = Path(__file__).resolve().parents[2]
#: Three phases drain with 1 and 2 workers, then Celery: about a minute on a quiet machine, up to
#: three on a 2-core one busy with other tests. A hang guard, not a speed check.
SMOKE_TIMEOUT_SECONDS = 270
DRAIN_TASKS = 12
DRAIN_WORKERS = (1, 2)
#: Phase 3 and phase 4 drained side by side: their ratio is what monitoring costs. Phase 5 brings
#: Celery's drain with it (on by default), so the peer's machinery is smoke-tested too.
DRAIN_PHASES = (3, 4, 5)
#: A small table for part (c), yet deeper than the deepest offset the API accepts (10,000), so
#: that every query has a page to read.
LIST_ROWS = 12_000


#: pytest-timeout's default (120 s) covers one test; the module's run is bounded by SMOKE_TIMEOUT_SECONDS.
pytestmark = pytest.mark.timeout(SMOKE_TIMEOUT_SECONDS + 30)


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """One quick run of the whole benchmark in its own process, as ``make bench`` would run it."""
    require_module("celery", "bench")  # phase 5's drain brings Celery's beside it
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
    assert set(rows) == {
        (phase, route) for phase in (1, 2) for route in ("POST /bench/floor", "POST /bench/validate", "POST /tasks")
    }
    for row in rows.values():
        assert row["requests"] > 0 and row["errors"] == 0
        assert row["requests_per_second"] > 0 and row["p50_ms"] > 0 and row["p99_ms"] >= row["p50_ms"]
        assert row["single_client_requests"] > 0
    assert rows[(1, "POST /tasks")]["throughput_x_floor"] > 0
    assert rows[(2, "POST /tasks")]["throughput_x_floor"] > 0


def test_every_accepted_task_was_stored_then_run_or_queued(
    bench_run: tuple[subprocess.CompletedProcess[str], dict[str, Any]],
) -> None:
    """Phase 1 ran each task in the API process; phase 2, with no worker, left each one queued."""
    _, figures = bench_run
    phase1, phase2 = sorted(figures["submit_store"], key=lambda store: store["phase"])
    assert phase1["accepted"] > 0 and phase1["stored"] == phase1["accepted"] == phase1["completed"]
    assert phase2["accepted"] > 0 and phase2["stored"] == phase2["accepted"] == phase2["queued"]


def test_the_drain_completes_every_task_with_1_and_2_workers(
    bench_run: tuple[subprocess.CompletedProcess[str], dict[str, Any]],
) -> None:
    completed, figures = bench_run
    assert "(b) drain" in completed.stdout
    phase_rows = [row for row in figures["drain"] if row["system"] == "tasklab"]
    assert [(row["phase"], row["workers"]) for row in phase_rows] == [(p, w) for p in DRAIN_PHASES for w in DRAIN_WORKERS]
    for row in figures["drain"]:
        assert row["completed"] == row["tasks"] == DRAIN_TASKS and row["failed"] == 0
        assert row["all_completed"] is True
        assert row["tasks_per_second"] > 0


def test_phase_4_is_priced_against_phase_3_in_the_same_run(
    bench_run: tuple[subprocess.CompletedProcess[str], dict[str, Any]],
) -> None:
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


def test_celery_drains_the_same_tasks_beside_phase_5(bench_run: tuple[subprocess.CompletedProcess[str], dict[str, Any]]) -> None:
    """Celery's prefork pool completes every row with each worker count, after phase 5; ratios printed and written."""
    completed, figures = bench_run
    drains = [(row["label"], row["workers"]) for row in figures["drain"]]
    assert drains[-4:] == [("phase 5", 1), ("phase 5", 2), ("Celery", 1), ("Celery", 2)]
    for celery in figures["drain"][-2:]:
        assert celery["system"] == "celery" and celery["phase"] is None
        assert celery["completed"] == DRAIN_TASKS and celery["all_completed"] is True
        assert celery["steady_tasks_per_second"] > 0
    assert set(figures["drain_ratios"]) == {
        f"phase 5 ÷ {base}, {workers} worker process(es), steady" for base in ("phase 4", "Celery") for workers in DRAIN_WORKERS
    }
    assert all(value > 0 for value in figures["drain_ratios"].values())
    assert "phase 5 ÷ Celery" in completed.stdout


def test_scaling_from_one_process_to_two_is_printed_for_phase_5_and_celery(
    bench_run: tuple[subprocess.CompletedProcess[str], dict[str, Any]],
) -> None:
    """Phase 5's scaling target, with Celery's own scaling beside it: what the same machine allows."""
    completed, figures = bench_run
    assert {"phase 5", "Celery"} <= set(figures["drain_scaling"])
    assert all(value > 0 for value in figures["drain_scaling"].values())
    assert "steady scaling, 1 → 2 worker processes: phase 5" in " ".join(completed.stdout.split())


def test_memory_is_sampled_beside_each_drain(bench_run: tuple[subprocess.CompletedProcess[str], dict[str, Any]]) -> None:
    """Every drain has peaks on both sides; phase 5's rest is its supervisor, checked against phase 5's scaling targets."""
    completed, figures = bench_run
    assert "(b) memory while draining" in completed.stdout
    memory = {(row["label"], row["workers"]): row for row in figures["drain_memory"]}
    assert set(memory) == {(row["label"], row["workers"]) for row in figures["drain"]}
    for row in memory.values():
        assert row["samples"] > 0
        assert row["rest_peak_rss_mb"] > 0 and row["total_peak_rss_mb"] >= row["rest_peak_rss_mb"]
    pool = memory[("phase 5", 2)]
    assert [role["role"] for role in pool["roles"] if not role["worker_process"]] == ["supervisor"]
    assert isinstance(pool["within_targets"], bool)
    assert figures["drain_memory_targets_mb"] == {"worker_process_rss": 70.0, "rest_rss": 130.0}
    assert "phase 5 memory" in completed.stdout
