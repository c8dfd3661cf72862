"""``python -m bench --stats-rows N`` runs end to end: part (d) seeds a table, builds its aggregates, times ``/stats``.

Speed is measured by the benchmark, never asserted here (a loaded CI machine must not fail a test
for being slow). What is checked is the machinery: the table is seeded over the span, the
aggregates are built from it, every window is timed on every database, and the figures reach
the table and the JSON. A few thousand rows and one span keep it to seconds;
``--stats-rows 1000000`` is the real measurement.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SMOKE_TIMEOUT_SECONDS = 120
SMOKE_ROWS = 3000
SMOKE_REPEATS = 2
WINDOWS = ("1h", "24h")
SPAN = "24h"


@pytest.fixture(scope="module")
def stats_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    json_path = tmp_path_factory.mktemp("bench") / "figures.json"
    command = [
        sys.executable, "-m", "bench", "--phases", "", "--drain-tasks", "0",
        "--stats-rows", str(SMOKE_ROWS), "--stats-repeats", str(SMOKE_REPEATS), "--stats-windows", ",".join(WINDOWS),
        "--stats-spans", SPAN,
        "--json", str(json_path),
    ]  # fmt: skip
    completed = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=SMOKE_TIMEOUT_SECONDS)
    assert json_path.exists(), f"no JSON written; stdout:\n{completed.stdout}\nstderr:\n{completed.stderr}"
    return completed, json.loads(json_path.read_text())


def test_every_window_is_timed_on_every_database(stats_run: tuple[subprocess.CompletedProcess[str], dict[str, Any]]) -> None:
    completed, figures = stats_run
    databases = ["sqlite", "postgresql"] if os.environ.get("TEST_DATABASE_URL") else ["sqlite"]

    assert completed.returncode == 0, f"{completed.stdout}\n{completed.stderr}"
    assert figures["failures"] == []
    assert [(row["database"], row["span"], row["window"]) for row in figures["stats_query"]] == [
        (d, SPAN, w) for d in databases for w in WINDOWS
    ]
    for row in figures["stats_query"]:
        assert row["rows"] == SMOKE_ROWS and row["runs"] == SMOKE_REPEATS
        assert row["span_seconds"] == 86400
        assert row["seed_seconds"] > 0 and row["build_seconds"] > 0
        assert 0 < row["median_ms"] <= row["p95_ms"]
        assert row["cpu_median_ms"] > 0
        assert row["ended_in_window"] > 0


def test_the_history_ends_now_and_the_wider_window_holds_more(
    stats_run: tuple[subprocess.CompletedProcess[str], dict[str, Any]],
) -> None:
    """The rows are spread over the last day up to the wall clock: an hour holds a slice of them, a day nearly all."""
    _, figures = stats_run
    by_window = {(row["database"], row["window"]): row["ended_in_window"] for row in figures["stats_query"]}
    for database, window in by_window:
        if window == "1h":
            hour, day = by_window[(database, "1h")], by_window[(database, "24h")]
            assert hour < day <= SMOKE_ROWS
            assert day > SMOKE_ROWS * 0.8  # 80 % completed and 10 % failed end; the rest are in flight


def test_the_table_is_printed(stats_run: tuple[subprocess.CompletedProcess[str], dict[str, Any]]) -> None:
    completed, _ = stats_run

    assert "(d) GET /stats on 3,000 tasks" in completed.stdout
    assert "build s" in completed.stdout
