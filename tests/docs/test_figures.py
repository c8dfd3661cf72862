"""Figures from data, not typing: a measured figure in the tutorial agrees with the data it came from.

The figures of the last benchmark run are generated into the pages from docs/data/bench.json
(``tasklab_cli.sitecontent``: ``bench_run`` and a generator per part of the run on the
benchmarks page, ``phase5_*`` in chapter 5b, ``sizing_measured`` in chapter 6b), so
``listings --check`` fails as soon as the data and the page disagree. The benchmarks page shows
that one run and no other: the only date on it is the run's. A rate or ratio written by hand
in the prose (tasks/s, req/s, jobs/s, ×) must either be one of bench.json's values at the
precision shown, or stand in a paragraph that says which run it is from: a date, a time of day,
"earlier runs", "over five runs", or "calculated" for a figure that cannot be measured here. A
figure that is neither is a typed figure with no source, and fails here.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from tasklab_cli import sitecontent
from tests.docs.test_vocabulary import prose

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted((ROOT / "docs").glob("*.md"))

FIGURE = re.compile(r"(?<![\w.])(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d+))?\s*(tasks/s|req/s|jobs/s|×)")
#: What names a figure's run when it is not the data file's.
LABELLED = re.compile(
    r"20\d\d-\d\d-\d\d|\b\d\d:\d\d\b|\b(?:earlier|previous)\s+runs?\b|\bcalculated\b"
    r"|\b(?:two|three|four|five|six|\d+)\s+runs\b|\bsame\s+run\b|\brun\s+above\b",
    re.IGNORECASE,
)
#: Where one unit of prose ends: a blank line, or the start of a list item (a bullet is read on its own).
UNITS = re.compile(r"\n\s*\n|\n(?=\s*(?:[-*]|\d+\.) )")
GENERATED = re.compile(r"<!-- generated:.*?<!-- /generated -->", re.DOTALL)


def numbers(data: object) -> list[float]:
    if isinstance(data, dict):
        return [n for value in data.values() for n in numbers(value)]
    if isinstance(data, list):
        return [n for value in data for n in numbers(value)]
    if isinstance(data, int | float) and not isinstance(data, bool):
        return [float(data)]
    return []


def unsourced_figures(markdown: str, values: list[float]) -> list[str]:
    """The hand-written figures that are no value of the data and name no run of their own."""
    paragraphs = UNITS.split(prose(GENERATED.sub("", markdown)))
    found = []
    for index, paragraph in enumerate(paragraphs):
        context = paragraph + (paragraphs[index - 1] if index else "")
        for match in FIGURE.finditer(paragraph):
            whole, decimals = match.group(1).replace(",", ""), match.group(2) or ""
            shown = float(f"{whole}.{decimals}" if decimals else whole)
            if any(round(value, len(decimals)) == shown for value in values) or LABELLED.search(context):
                continue
            found.append(match.group(0))
    return found


def test_every_hand_written_figure_is_from_the_data_or_names_its_run() -> None:
    values = numbers(sitecontent.bench_data())
    found = {page.name: unsourced_figures(page.read_text(), values) for page in PAGES}
    assert not {name: figures for name, figures in found.items() if figures}


#: Each page that quotes the benchmark, and the generated blocks it must carry.
GENERATED_FIGURES = {
    "benchmarks.md": (
        "bench_run",
        "bench_submit",
        "bench_queueing",
        "bench_drain",
        "bench_drain_ratios",
        "bench_memory",
        "bench_monitoring",
        "bench_listing",
        "bench_stats",
        "bench_dashboards",
    ),
    "05b-pool.md": ("phase5_drain", "phase5_summary", "phase5_memory"),
    "06b-beyond-one-host.md": ("sizing_measured",),
}
GENERATORS = sorted({name for names in GENERATED_FIGURES.values() for name in names})
DATE = re.compile(r"20\d\d-\d\d-\d\d")


def dates_outside_generated(markdown: str) -> set[str]:
    """The dates a page states by hand: everything but its generated blocks, code blocks included."""
    return set(DATE.findall(GENERATED.sub("", markdown)))


def test_the_pages_that_quote_the_benchmark_generate_its_figures() -> None:
    """One run per page, dated: the run line and every part's figures come from bench.json."""
    date = sitecontent.bench_data()["machine"]["date"]
    for page, generators in GENERATED_FIGURES.items():
        markdown = (ROOT / "docs" / page).read_text()
        missing = [name for name in generators if f"<!-- generated: tasklab_cli.sitecontent:{name} -->" not in markdown]
        assert not missing, f"{page}: no generated block of {missing}"
        assert date in markdown, f"{page}: the run's date {date} is not on the page"


def test_the_benchmarks_page_shows_one_run_and_its_date_only() -> None:
    """Earlier runs are the data file's history (`git log -p docs/data/bench.json`), not the page's."""
    markdown = (ROOT / "docs" / "benchmarks.md").read_text()
    run_date = sitecontent.bench_data()["machine"]["date"].split()[0]

    assert dates_outside_generated(markdown) <= {run_date}
    assert markdown.count("<!-- generated: tasklab_cli.sitecontent:bench_run -->") == 1


def test_the_date_check_catches_a_run_quoted_by_hand() -> None:
    """Guards the test above: a date in prose is found, one in a generated block is not."""
    markdown = (
        "<!-- generated: tasklab_cli.sitecontent:bench_run -->\nRun: **2031-01-01 00:00 UTC**\n<!-- /generated -->\n\n"
        "The next day (2031-01-02) it drained 5.0 tasks/s.\n"
    )

    assert dates_outside_generated(markdown) == {"2031-01-02"}


#: A run as small as ``bench.report.write_json`` can write one: phase 2's submit, phase 5's
#: drain with one process (no phase 4, no Celery, no memory), and (c), (d) and (e) on request.
SMALL_RUN: dict[str, object] = {
    "machine": {"date": "2031-01-01 00:00 UTC", "argv": "python -m bench --quick"},
    "config": {"concurrency": 4, "drain_tasks": 10},
    "submit": [
        {
            "phase": 2,
            "route": route,
            "requests": 10,
            "errors": 0,
            "requests_per_second": rate,
            "p50_ms": 1.0,
            "p99_ms": 2.0,
            "throughput_x_floor": None if route.endswith("floor") else 0.5,
            "p50_x_floor": 1.0,
            "p99_x_floor": 1.0,
            "server_cpu_ms_per_request": 0.5,
            "client_cpu_share": None,
            "single_client_p50_ms": 0.5,
            "single_client_p99_ms": None,
        }
        for route, rate in (("POST /bench/floor", 1000.0), ("POST /tasks", 500.0))
    ],
    "drain": [
        {
            "label": "phase 5",
            "phase": 5,
            "workers": 1,
            "tasks": 10,
            "completed": 10,
            "failed": 0,
            "wall_seconds": 1.0,
            "tasks_per_second": 10.0,
            "tasks_per_second_x_1_worker": 1.0,
            "startup_seconds": 0.5,
            "steady_seconds": 0.5,
            "steady_tasks_per_second": 20.0,
            "steady_x_1_worker": 1.0,
        }
    ],
    "drain_ratios": {},
    "monitoring_overhead": {},
    "listing": [
        {
            "database": "SQLite",
            "rows": 1000,
            "query": label,
            "served": served,
            "runs": 3,
            "total": 1000,
            "total_is_exact": served,
            "median_ms": 1.0,
            "p95_ms": 2.0,
            "within_budget": True,
        }
        for label, served in (("newest first, no filter", True), ("offset=500000", False))
    ],
    "stats_query": [
        {
            "database": "SQLite",
            "rows": 1000,
            "span": "24h",
            "window": "1h",
            "build_seconds": 0.2,
            "ended_in_window": 40,
            "runs": 3,
            "median_ms": 3.0,
            "p95_ms": 4.0,
            "within_budget": True,
            "cpu_median_ms": 2.0,
        }
    ],
    "dashboards": [
        {
            "condition": condition,
            "dashboards": dashboards,
            "requests_per_second": 100.0,
            "throughput_x_alone": 1.0,
            "p50_ms": 1.0,
            "p99_ms": 2.0,
            "server_cpu_ms_per_request": 0.5,
            "errors": 0,
            "stats_polls": 6 if dashboards else None,
            "stats_poll_median_ms": 1.5 if dashboards else None,
            "stats_computations": 3 if dashboards else None,
        }
        for condition, dashboards in (("alone", 0), ("with 2 dashboards", 2))
    ],
    "dashboards_summary": None,
    "duration_seconds": 12.0,
}


def test_every_generator_renders_a_run_that_lacks_its_part() -> None:
    """A later ``make bench`` may skip any part (``--drain-tasks 0``, ``--phases ''``): each generator
    then says which option measures it, instead of failing the docs build."""
    bare = {"machine": {"date": "2031-01-01 00:00 UTC"}, "config": {"concurrency": 16}}
    for name in GENERATORS:
        text = getattr(sitecontent, name)(bare)
        assert text and ("not measured in this run" in text or name == "bench_run"), name


def test_the_generators_render_what_a_small_run_holds() -> None:
    """Guards the tables: the parts a run holds are rendered, the ones it lacks are named, nulls are dashes."""
    rendered = {name: getattr(sitecontent, name)(SMALL_RUN) for name in GENERATORS}

    assert "| 2 | `POST /tasks` | 500 |" in rendered["bench_submit"]
    assert "4 clients ÷ 500 req/s ≈ 8 ms" in rendered["bench_queueing"]
    assert "| phase 5 | 1 | 10/10 |" in rendered["bench_drain"]
    assert "*not served:* offset=500000" in rendered["bench_listing"]
    assert "| SQLite | 24h | 1h | 0.2 | 40 |" in rendered["bench_stats"]
    assert "| with 2 dashboards | 100 | 1.00× |" in rendered["bench_dashboards"]
    for name in ("bench_drain_ratios", "bench_memory", "bench_monitoring", "phase5_drain", "phase5_summary", "sizing_measured"):
        assert "not measured in this run" in rendered[name], name
    assert "None" not in "".join(rendered.values())


def test_a_figure_that_disagrees_with_the_data_is_caught(tmp_path: Path) -> None:
    """Guards the tests above: a typed 37.5 tasks/s is caught where bench.json says 37.2; the
    same figure labelled with its run is not; and the generated text follows the data file."""
    values = [37.169277755772534, 18.70246223580323]

    assert unsourced_figures("Phase 4 drains 37.5 tasks/s.\n", values) == ["37.5 tasks/s"]
    assert unsourced_figures("Phase 4 drains 37.2 tasks/s, the pool 18.7× that.\n", values) == []
    assert unsourced_figures("On 2026-11-23, phase 4 drained 22.2 tasks/s.\n", values) == []

    data = json.loads(sitecontent.BENCH_JSON.read_text())
    data["machine"]["date"] = "2031-01-01 00:00 UTC"
    (tmp_path / "bench.json").write_text(json.dumps(data))
    assert sitecontent.bench_data(tmp_path / "bench.json")["machine"]["date"] == "2031-01-01 00:00 UTC"
