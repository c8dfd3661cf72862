"""``python -m bench.plots FIGURES.json``: the pictures of one ``make bench`` run, for the docs.

A reader would rather look than read a table of ratios, so ``make bench`` draws two figures from
the JSON it writes, and the chapters embed them:

* ``bench-submit.png``: ``POST /tasks`` per phase against the framework's floor measured in the
  same server (requests per second, and p99 latency at the same concurrency);
* ``bench-drain.png``: how fast each phase (and Celery, the peer) empties a queue of no-op
  tasks, with one and with two worker processes (steady rate).

Each figure carries the date and the machine of its run in its title: a figure without them is
a claim nobody can check. The plots read only the JSON, so they can be redrawn from any saved
run without measuring again.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no screen on a CI machine or a server

import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen before pyplot loads)

DEFAULT_OUTPUT_DIR = Path("docs/img")
#: The routes of the submit figure, in drawing order, and how the legend names them.
SUBMIT_ROUTES: dict[str, str] = {
    "POST /bench/floor": "floor (no-op route)",
    "POST /bench/validate": "validate only",
    "POST /tasks": "POST /tasks",
}
FIGURE_SIZE = (9.0, 4.0)
DPI = 110


def provenance(figures: dict[str, Any]) -> str:
    """``2026-11-26 05:10 UTC · AMD EPYC, 2 usable cores``: where and when the figures were measured."""
    machine = figures.get("machine", {})
    cores = str(machine.get("cores", "? cores")).split(":")[0]  # "2 usable (2 present): the load client …"
    return f"{machine.get('date', 'undated')} · {machine.get('cpu', 'unknown cpu')}, {cores} cores"


def submit_figure(figures: dict[str, Any], path: Path) -> bool:
    """Requests per second and p99 per phase and route; ``False`` when the run measured no submit."""
    rows = figures.get("submit", [])
    if not rows:
        return False
    phases = sorted({row["phase"] for row in rows})
    by_route: dict[str, dict[int, dict[str, Any]]] = defaultdict(dict)
    for row in rows:
        by_route[row["route"]][row["phase"]] = row

    figure, (rate_axis, latency_axis) = plt.subplots(1, 2, figsize=FIGURE_SIZE)
    width = 0.8 / len(SUBMIT_ROUTES)
    for index, (route, label) in enumerate(SUBMIT_ROUTES.items()):
        offsets = [phase + (index - (len(SUBMIT_ROUTES) - 1) / 2) * width for phase in phases]
        measured = by_route.get(route, {})
        rate_axis.bar(offsets, [measured.get(p, {}).get("requests_per_second", 0) for p in phases], width, label=label)
        latency_axis.bar(offsets, [measured.get(p, {}).get("p99_ms", 0) for p in phases], width, label=label)
    for axis, title in (
        (rate_axis, "requests per second (higher is better)"),
        (latency_axis, "p99 latency, ms (lower is better)"),
    ):
        axis.set_xticks(phases, [f"phase {p}" for p in phases])
        axis.set_title(title, fontsize=10)
        axis.grid(axis="y", alpha=0.3)
    concurrency = figures.get("config", {}).get("concurrency", "?")
    rate_axis.legend(fontsize=8)
    figure.suptitle(f"Submit, {concurrency} concurrent clients · {provenance(figures)}", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=DPI)
    plt.close(figure)
    return True


def drain_figure(figures: dict[str, Any], path: Path) -> bool:
    """Steady drain rate per system and worker count; ``False`` when the run drained nothing."""
    rows = [row for row in figures.get("drain", []) if row.get("all_completed")]
    if not rows:
        return False
    labels = list(dict.fromkeys(row["label"] for row in rows))  # phases in run order, then the peer
    worker_counts = sorted({row["workers"] for row in rows})
    rates = {(row["label"], row["workers"]): row["steady_tasks_per_second"] for row in rows}

    figure, axis = plt.subplots(figsize=FIGURE_SIZE)
    width = 0.8 / len(worker_counts)
    for index, workers in enumerate(worker_counts):
        offsets = [position + (index - (len(worker_counts) - 1) / 2) * width for position in range(len(labels))]
        values = [rates.get((label, workers), 0) for label in labels]
        bars = axis.bar(offsets, values, width, label=f"{workers} worker process{'es' if workers > 1 else ''}")
        axis.bar_label(bars, labels=[f"{value:.0f}" if value else "" for value in values], fontsize=7)  # no "0" for "not run"
    axis.set_xticks(range(len(labels)), labels)
    axis.set_ylabel("no-op tasks per second, steady")
    axis.grid(axis="y", alpha=0.3)
    axis.legend(fontsize=8)
    tasks = figures.get("config", {}).get("drain_tasks", "?")
    axis.set_title(f"Drain {tasks} queued no-op tasks, rows written · {provenance(figures)}", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=DPI)
    plt.close(figure)
    return True


def draw(figures_path: Path, output_dir: Path) -> list[Path]:
    """Every figure the run has data for, written into ``output_dir``; the paths written."""
    figures = json.loads(figures_path.read_text())
    output_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, draw_one in (("bench-submit.png", submit_figure), ("bench-drain.png", drain_figure)):
        if draw_one(figures, output_dir / name):
            written.append(output_dir / name)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.plots",
        description="Draw the submit and drain figures of one benchmark run from its JSON (python -m bench --json FILE).",
    )
    parser.add_argument("figures", type=Path, help="the JSON file a benchmark run wrote")
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUTPUT_DIR, help=f"where to write the PNG files (default {DEFAULT_OUTPUT_DIR})"
    )
    args = parser.parse_args(argv)
    if not args.figures.is_file():
        parser.error(f"{args.figures} does not exist: run `python -m bench --json {args.figures}` first")
    for path in draw(args.figures, args.out):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
