"""``bench.plots`` draws the docs' figures from a run's JSON, and only the ones it has data for."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.tools import require_module

Draw = Callable[[Path, Path], list[Path]]


@pytest.fixture
def draw() -> Draw:
    """``bench.plots.draw``, where make bench's extra (matplotlib) is installed: skipped without it."""
    require_module("matplotlib", "bench")
    from bench.plots import draw as draw_figures

    return draw_figures


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MACHINE = {"date": "2026-11-26 05:00 UTC", "cpu": "AMD EPYC", "cores": "2 usable (2 present): shared with the client"}


def submit_row(phase: int, route: str, rate: float) -> dict[str, Any]:
    return {"phase": phase, "route": route, "requests_per_second": rate, "p99_ms": 1000 * 16 / rate}


def drain_row(label: str, workers: int, rate: float) -> dict[str, Any]:
    return {"label": label, "workers": workers, "steady_tasks_per_second": rate, "all_completed": True}


def write(tmp_path: Path, figures: dict[str, Any]) -> Path:
    path = tmp_path / "bench.json"
    path.write_text(json.dumps({"machine": MACHINE, "config": {"concurrency": 16, "drain_tasks": 2000}, **figures}))
    return path


def test_a_full_run_gives_the_submit_and_the_drain_figure_as_png_files(tmp_path: Path, draw: Draw) -> None:
    figures = write(
        tmp_path,
        {
            "submit": [
                submit_row(p, route, rate) for p in (4, 5) for route, rate in (("POST /bench/floor", 2000), ("POST /tasks", 400))
            ],
            "drain": [drain_row("phase 5", 1, 300), drain_row("phase 5", 2, 550), drain_row("Celery", 2, 700)],
        },
    )

    written = draw(figures, tmp_path / "img")

    assert [path.name for path in written] == ["bench-submit.png", "bench-drain.png"]
    assert all(path.read_bytes().startswith(PNG_SIGNATURE) for path in written)


def test_a_run_without_drains_draws_no_drain_figure(tmp_path: Path, draw: Draw) -> None:
    figures = write(tmp_path, {"submit": [submit_row(5, "POST /tasks", 400)], "drain": []})

    written = draw(figures, tmp_path / "img")

    assert [path.name for path in written] == ["bench-submit.png"]
