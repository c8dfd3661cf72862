"""Figures from data, not typing: a measured figure in the tutorial agrees with the data it came from.

The figures of the last benchmark run are generated into the pages from docs/data/bench.json
(``tasklab_cli.sitecontent``: ``bench_run``, ``phase5_drain``, ``phase5_summary``), so
``listings --check`` fails as soon as the data and the page disagree. A rate or ratio written
by hand in the prose (tasks/s, req/s, jobs/s, ×) must either be one of bench.json's values at
the precision shown, or stand in a paragraph that says which run it is from: a date, a time of
day, "earlier runs", "over five runs", or "calculated" for a figure that cannot be measured
here. A figure that is neither is a typed figure with no source, and fails here.
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
    r"20\d\d-\d\d-\d\d|\b\d\d:\d\d\b|\bearlier\b|\bbefore\b|\bruns\b|\brun on\b|\bcalculated\b|\bsame run\b|\brun above\b",
    re.IGNORECASE,
)
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
    paragraphs = re.split(r"\n\s*\n", prose(GENERATED.sub("", markdown)))
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


def test_the_pages_that_quote_the_benchmark_generate_its_figures() -> None:
    """One run per page, dated: the run line and the chapter's figures come from bench.json."""
    benchmarks = (ROOT / "docs" / "benchmarks.md").read_text()
    pool = (ROOT / "docs" / "05b-pool.md").read_text()
    date = sitecontent.bench_data()["machine"]["date"]

    assert "<!-- generated: tasklab_cli.sitecontent:bench_run -->" in benchmarks
    assert "<!-- generated: tasklab_cli.sitecontent:phase5_drain -->" in pool
    assert "<!-- generated: tasklab_cli.sitecontent:phase5_summary -->" in pool
    assert date in benchmarks and date in pool


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
