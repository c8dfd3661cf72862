"""``python -m bench --dashboards N`` runs end to end: part (e) times POST /tasks alone and with dashboards open.

Speed is measured by the benchmark, never asserted here (a loaded CI machine must not fail a test
for being slow, and a ratio of two short runs is noise). What is checked is the machinery: phase
4's API starts, both conditions get answers, the dashboards poll ``/stats`` and get answers
(some shared by its cache), and the figures reach the table and the JSON. A few hundred
requests and two dashboards keep it to seconds; ``--dashboards 10`` is the real measurement.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SMOKE_TIMEOUT_SECONDS = 120
DASHBOARDS = 2
#: Enough for each "with dashboards" round to outlast the dashboards' first polls.
REQUESTS = 400
ROUNDS = 2
CONCURRENCY = 4

Run = tuple[subprocess.CompletedProcess[str], dict[str, Any]]


@pytest.fixture(scope="module")
def dashboards_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    json_path = tmp_path_factory.mktemp("bench") / "figures.json"
    command = [
        sys.executable, "-m", "bench", "--phases", "", "--drain-tasks", "0",
        "--dashboards", str(DASHBOARDS), "--dashboard-requests", str(REQUESTS),
        "--rounds", str(ROUNDS), "--concurrency", str(CONCURRENCY), "--warmup", "20",
        "--json", str(json_path),
    ]  # fmt: skip
    completed = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=SMOKE_TIMEOUT_SECONDS)
    assert json_path.exists(), f"no JSON written; stdout:\n{completed.stdout}\nstderr:\n{completed.stderr}"
    return completed, json.loads(json_path.read_text())


def test_both_conditions_are_measured(dashboards_run: Run) -> None:
    completed, figures = dashboards_run

    assert completed.returncode == 0, f"{completed.stdout}\n{completed.stderr}"
    assert figures["failures"] == [] and figures["ok"] is True
    alone, watched = figures["dashboards"]
    assert (alone["condition"], watched["condition"]) == ("alone", f"with {DASHBOARDS} dashboards")
    for row in (alone, watched):
        assert row["phase"] == 4 and row["concurrency"] == CONCURRENCY and row["rounds"] == ROUNDS
        assert row["requests"] == REQUESTS and row["errors"] == 0
        assert row["requests_per_second"] > 0 and 0 < row["p50_ms"] <= row["p99_ms"]
        assert row["server_cpu_ms_per_request"] > 0
        assert len(row["round_requests_per_second"]) == ROUNDS
    assert alone["throughput_x_alone"] == 1.0 and watched["throughput_x_alone"] > 0
    summary = figures["dashboards_summary"]
    assert summary["dashboards"] == DASHBOARDS and summary["refresh_seconds"] == 2.0
    assert summary["throughput_with_dashboards_x_alone"] == watched["throughput_x_alone"]
    assert len(summary["round_ratios"]) == ROUNDS and summary["median_round_ratio"] > 0
    assert isinstance(summary["within_target"], bool)


def test_the_dashboards_poll_stats(dashboards_run: Run) -> None:
    """The first dashboard asks as each round starts (the others open later); at most one computation per poll."""
    _, figures = dashboards_run
    watched = figures["dashboards"][1]
    assert watched["stats_polls"] >= ROUNDS and watched["stats_poll_errors"] == 0
    assert 1 <= watched["stats_computations"] <= watched["stats_polls"]
    assert 0 < watched["stats_poll_median_ms"] <= watched["stats_poll_p95_ms"]
    assert watched["stats_computed_median_ms"] > 0


def test_the_table_is_printed(dashboards_run: Run) -> None:
    completed, _ = dashboards_run
    text = " ".join(completed.stdout.split())
    assert "(e) phase 4 POST /tasks with dashboards open" in text
    assert f"with {DASHBOARDS} dashboards" in text and "× alone" in text
