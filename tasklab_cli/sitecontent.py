"""Markdown the tutorial site quotes from elsewhere in the repository, kept in sync by ``make docs``.

The site is built from ``docs/`` alone, so a chapter cannot link to ``../README.md``. What the
site needs from the README is generated into the page instead, with a
``<!-- generated: tasklab_cli.sitecontent:… -->`` region (see ``tasklab_cli.listings``).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

REPO_ROOT = Path(__file__).resolve().parent.parent


def readme_section(heading: str, root: Path = REPO_ROOT) -> str:
    """The body of the README's ``## heading`` section, up to the next ``##`` heading."""
    text = (root / "README.md").read_text()
    marker = f"\n## {heading}\n"
    if marker not in text:
        raise LookupError(f"README.md has no '## {heading}' section")
    return text.split(marker, 1)[1].split("\n## ", 1)[0].strip("\n")


def http_contract() -> str:
    """The HTTP contract every phase serves, as the README states it."""
    return readme_section("The HTTP contract")


# ---------------------------------------------------------------------------------------------
# Figures from the benchmark's data file: prose that quotes a measurement is generated from it,
# so a figure cannot disagree with docs/data/bench.json (``listings --check`` fails when it does).
# docs/benchmarks.md shows the one run that file records; each part of it gets a generator, and
# a part the run skipped (``--list-rows`` and the like are on request) gets a line saying which
# option measures it, so the page regenerates from any run of ``make bench``.

BENCH_JSON = REPO_ROOT / "docs" / "data" / "bench.json"

#: One run's figures, as ``bench.report.write_json`` wrote them; a row is one entry of a part.
BenchData = dict[str, Any]
Row = dict[str, Any]


def bench_data(path: Path = BENCH_JSON) -> BenchData:
    """The last ``make bench`` run written to the docs: ``python -m bench --json docs/data/bench.json``."""
    data: BenchData = json.loads(path.read_text())
    return data


def _bench(data: BenchData | None) -> BenchData:
    """The run a generator renders: the one given (the tests' small hand-made runs) or the docs' file."""
    return bench_data() if data is None else data


@dataclass(frozen=True)
class Targets:
    """What the chapters promise, as ``bench.report`` checks it: the yardstick beside a figure."""

    phase2_post_p99_ms: float
    phase5_x_phase4: float
    phase5_x_celery: float
    phase5_scaling: float
    monitoring_overhead: float
    list_query_ms: float
    stats_ms: float


def bench_targets() -> Targets:
    """The targets from the benchmark's own code, so the page and the terminal judge alike.

    Imported on call: ``bench.report`` loads the phase 5 package, which nothing else of this
    module needs (the reading-time tests import it too).
    """
    from bench import listing, report, stats_query

    return Targets(
        phase2_post_p99_ms=report.PHASE2_POST_P99_TARGET_MS,
        phase5_x_phase4=report.PHASE5_X_PHASE4_TARGET,
        phase5_x_celery=report.PHASE5_X_CELERY_TARGET,
        phase5_scaling=report.PHASE5_SCALING_TARGET,
        monitoring_overhead=report.MONITORING_OVERHEAD_BUDGET,
        list_query_ms=listing.LIST_QUERY_BUDGET_MS,
        stats_ms=stats_query.STATS_BUDGET_MS,
    )


class MissingPart(LookupError):
    """The run has no row a generator needs: it did not measure that part (``--drain-tasks 0`` …)."""


def _row(data: BenchData, part: str, **match: object) -> Row:
    """The row of ``data[part]`` whose fields equal ``match``; MissingPart (naming it) when the run has none."""
    for row in data.get(part) or []:
        if all(row.get(key) == value for key, value in match.items()):
            return dict(row)
    wanted = ", ".join(f"{key} {value}" for key, value in match.items())
    raise MissingPart(f"docs/data/bench.json has no {part} row with {wanted}")


def _num(value: float | None, digits: int = 1) -> str:
    """A figure as the terminal prints it; JSON's null (bench.report writes NaN as null) is ``–``."""
    return "–" if value is None else f"{value:,.{digits}f}"


def _times(value: float | None) -> str:
    """A ratio: ``1.67×``."""
    return "–" if value is None else f"{value:.2f}×"


def _percent(value: float | None, digits: int = 0, signed: bool = False) -> str:
    """A share, ``42 %``, or a change, ``+0.6 %``."""
    return "–" if value is None else f"{value * 100:{'+' if signed else ''}.{digits}f} %"


def _mb(rss: float | None, pss: float | None) -> str:
    """Resident memory and, in brackets, its proportional share: ``67 (52)``."""
    return f"{_num(rss, 0)} ({_num(pss, 0)})"


def _verdict(met: bool | None) -> str:
    return "–" if met is None else ("met" if met else "**not met**")


#: A cell of figures: a number, a signed change, a ratio's ``base``, or ``–`` for none.
FIGURE_CELL = re.compile(r"^(?:[\d+−-]|–$|base$)")


def _table(records: Sequence[dict[str, str]]) -> str:
    """A Markdown table of records, one per row, their keys the columns: each column is named
    once, beside its cell. A column whose every cell is a figure is right-aligned, as the terminal prints it."""
    header = list(records[0])
    rows = [[record.get(column, "–") for column in header] for record in records]
    rule = ["---:" if all(FIGURE_CELL.match(cells[i]) for cells in rows) else "---" for i in range(len(header))]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in (header, rule, *rows))


def _not_run(part: str, options: str) -> str:
    """The one line of a part the run did not measure: which options of ``python -m bench`` do."""
    return f"{part}: not measured in this run; `python -m bench {options}` measures it."


class FigureGenerator(Protocol):
    """What ``listings`` calls for a generated block (no argument: docs/data/bench.json), and the tests (a run)."""

    def __call__(self, data: BenchData | None = None) -> str: ...


def _figures(what: str, options: str, *parts: str) -> Callable[[Callable[[BenchData], str]], FigureGenerator]:
    """Make ``render(run)`` a generator of one run's figures that copes with any run of ``make bench``.

    Parts (c) to (e) are on request and any other can be skipped, so a run may lack what a block
    renders: none of ``parts`` holds anything, or a row it needs is missing (MissingPart). The
    block then says which options measure it instead of failing the docs build. One rule, here,
    for every generator.
    """

    def decorate(render: Callable[[BenchData], str]) -> FigureGenerator:
        @functools.wraps(render)
        def generator(data: BenchData | None = None) -> str:
            run = _bench(data)
            if parts and not any(run.get(part) for part in parts):
                return _not_run(what, options)
            try:
                return render(run)
            except MissingPart:
                return _not_run(what, options)

        return generator

    return decorate


def _drain_label(row: Row) -> str:
    """What drained: ``phase 5``, or ``Celery prefork`` for the peer."""
    return str(row["label"]) if row.get("phase") is not None else f"{row['label']} prefork"


def bench_run(data: BenchData | None = None) -> str:
    """The run docs/data/bench.json records: when, on what, with what (the page's one dated run)."""
    data = _bench(data)
    machine = data["machine"]
    database = str(machine.get("database", "–")).split(", fresh file")[0]
    wakeup = f"; process wake-up: {machine['process wake-up']}" if machine.get("process wake-up") else ""
    return (
        f"Run: **{machine['date']}**, {_num(data.get('duration_seconds'), 0)} s "
        f"(`{machine.get('argv', 'python -m bench')}`). Machine: {machine.get('cores', '–')}; {machine.get('cpu', '–')}; "
        f"{machine.get('python', '–')}; {database}; {machine.get('redis', '–')}{wakeup}; "
        f"load average {machine.get('load average at start (1/5/15 min)', '–')} at the start. "
        f"Packages: {machine.get('packages', '–')}."
    )


def _submit_record(row: Row) -> dict[str, str]:
    """One row of part (a), in the terminal table's columns; the floor is each ratio's ``base``."""
    floor = str(row["route"]).endswith("/floor")
    return {
        "phase": str(row["phase"]),
        "route": f"`{row['route']}`",
        "req/s": _num(row["requests_per_second"], 0),
        "p50 ms": _num(row["p50_ms"]),
        "p99 ms": _num(row["p99_ms"]),
        "req/s × floor": "base" if floor else _times(row["throughput_x_floor"]),
        "p50 × floor": "base" if floor else _times(row["p50_x_floor"]),
        "p99 × floor": "base" if floor else _times(row["p99_x_floor"]),
        "server CPU ms/req": _num(row["server_cpu_ms_per_request"], 2),
        "client CPU": _percent(row["client_cpu_share"]),
        "errors": str(row["errors"]),
        "1 client p50 ms": _num(row["single_client_p50_ms"], 2),
        "1 client p99 ms": _num(row["single_client_p99_ms"], 2),
    }


def _stored(store: Row) -> str:
    """What one phase's accepted submits became: stored rows, and run tasks (phase 1) or the jobs
    left in the phase's own queues (phases 2 on, no worker running)."""
    line = f"phase {store['phase']}: {_num(store.get('stored'), 0)} of {_num(store.get('accepted'), 0)} accepted tasks stored"
    if store.get("completed") is not None:
        line += f", {_num(store['completed'], 0)} run to `completed` in the API process"
    if store.get("queued") is not None:
        line += f", {_num(store['queued'], 0)} jobs left in the queue"
    return line + (f" (**{store['problem']}**)" if store.get("problem") else "")


@_figures("(a) `POST /tasks` against the floor", "--phases 1,2,3,4,5", "submit")
def bench_submit(data: BenchData) -> str:
    """Part (a): every phase and route the run measured, the terminal's table, then what the submits left."""
    table = _table([_submit_record(row) for row in data["submit"]])
    stores = [_stored(store) for store in data.get("submit_store") or []]
    return table + ("\n\nAfter the load: " + "; ".join(stores) + "." if stores else "")


@_figures("Phase 2's `POST /tasks`", "--phases 2")
def bench_queueing(data: BenchData) -> str:
    """Little's law on the run's phase 2 ``POST /tasks``: how much of its loaded latency the queue of
    clients explains (calculated), and the one-client figure phase 2's promise is checked on."""
    row = _row(data, "submit", phase=2, route="POST /tasks")
    clients, rate, solo_p99 = data["config"]["concurrency"], row["requests_per_second"], row["single_client_p99_ms"]
    target = bench_targets().phase2_post_p99_ms
    within = "–" if solo_p99 is None else ("within" if solo_p99 < target else "**over**")
    waits = "–" if not rate else f"{clients / rate * 1000:.0f}"
    return (
        f"Calculated from phase 2's `POST /tasks` above: {clients} clients ÷ {_num(rate, 0)} req/s ≈ {waits} ms a "
        f"request on average, whatever one request costs; the measured median was {_num(row['p50_ms'])} ms. One client "
        f"at a time, with no worker running and the queue growing, its p99 was {_num(solo_p99, 2)} ms: {within} "
        f"the {target:.0f} ms phase 2 promises."
    )


def _drain_record(row: Row) -> dict[str, str]:
    """One drain of part (b), in the terminal table's columns."""
    return {
        "drained by": _drain_label(row),
        "workers": str(row["workers"]),
        "completed": f"{row['completed']:,}/{row['tasks']:,}" + (f" ({row['failed']} failed)" if row.get("failed") else ""),
        "wall s": _num(row["wall_seconds"], 2),
        "tasks/s": _num(row["tasks_per_second"]),
        "× 1 worker": _times(row["tasks_per_second_x_1_worker"]),
        "start-up s": _num(row["startup_seconds"], 2),
        "steady s": _num(row["steady_seconds"], 2),
        "steady tasks/s": _num(row["steady_tasks_per_second"]),
        "steady × 1 worker": _times(row["steady_x_1_worker"]),
    }


@_figures("(b) the drains", "--drain-tasks 500 --drain-phases 2,3,4,5", "drain")
def bench_drain(data: BenchData) -> str:
    """Part (b): each drain of the run, phases and Celery, wall and steady, and each against its own 1 worker."""
    return _table([_drain_record(row) for row in data["drain"]])


#: A key of ``drain_ratios``: "phase 5 ÷ Celery, 2 worker process(es), steady".
RATIO_KEY = re.compile(r"^(?P<what>.+?), (?P<workers>\d+) worker process\(es\), steady$")


def _target_cell(what: str, by_workers: dict[int, float], targets: Targets) -> str:
    """Phase 5's target for a ratio, which is set with 2 processes, and whether this run met it."""
    target = {"phase 5 ÷ phase 4": targets.phase5_x_phase4, "phase 5 ÷ Celery": targets.phase5_x_celery}.get(what)
    if target is None:
        return "–"
    return f"≥ {target:.1f}× with 2: {_verdict(by_workers[2] >= target if 2 in by_workers else None)}"


def _processes(count: int) -> str:
    return f"{count} worker process{'es' if count > 1 else ''}"


@_figures("Phase 5 against phase 4 and Celery", "--drain-phases 4,5", "drain_ratios", "drain_scaling")
def bench_drain_ratios(data: BenchData) -> str:
    """Part (b)'s ratios: phase 5 against phase 4 and Celery per worker count, and each system's
    second process (steady rates), beside phase 5's targets."""
    ratios: dict[str, dict[int, float]] = {}
    for key, value in (data.get("drain_ratios") or {}).items():
        match = RATIO_KEY.match(key)
        if match is not None:
            ratios.setdefault(match["what"], {})[int(match["workers"])] = value
    counts = sorted({workers for by_workers in ratios.values() for workers in by_workers})
    targets = bench_targets()
    against = [
        {
            "steady rate": what,
            **{_processes(n): _times(by_workers.get(n)) for n in counts},
            "phase 5's target": _target_cell(what, by_workers, targets),
        }
        for what, by_workers in ratios.items()
    ]
    scaling = [
        {
            "a second worker process": label,
            "steady, 2 ÷ 1": _times(value),
            "phase 5's target": (
                f"≥ {targets.phase5_scaling:.1f}×: {_verdict(value >= targets.phase5_scaling)}" if label == "phase 5" else "–"
            ),
        }
        for label, value in (data.get("drain_scaling") or {}).items()
    ]
    return "\n\n".join(_table(records) for records in (against, scaling) if records)


def _memory_record(row: Row, targets: dict[str, float]) -> dict[str, str]:
    """One drain's peak memory, RSS (PSS), with phase 5's targets in the headings."""
    per_process, rest = targets.get("worker_process_rss"), targets.get("rest_rss")
    return {
        "drained by": _drain_label(row),
        "workers": str(row["workers"]),
        "samples": str(row["samples"]),
        "per worker process" + (f" (≤ {per_process:.0f} for phase 5)" if per_process else ""): _mb(
            row["worker_process_peak_rss_mb"], row["worker_process_peak_pss_mb"]
        ),
        "the rest" + (f" (≤ {rest:.0f} for phase 5)" if rest else ""): _mb(row["rest_peak_rss_mb"], row["rest_peak_pss_mb"]),
        "the rest is": ", ".join(
            f"{role['role']} ×{role['processes']}" for role in row.get("roles", []) if not role["worker_process"]
        )
        or "–",
        "all processes": _mb(row["total_peak_rss_mb"], row["total_peak_pss_mb"]),
        "phase 5's targets": _verdict(row.get("within_targets")),
    }


@_figures("Memory while draining", "--drain-tasks 500", "drain_memory")
def bench_memory(data: BenchData) -> str:
    """Part (b)'s memory: each drain's peak RSS (PSS) per worker process, for the rest and in all,
    with phase 5's targets, which the run itself judged (``within_targets``)."""
    targets = data.get("drain_memory_targets_mb") or {}
    return _table([_memory_record(row, targets) for row in data["drain_memory"]])


def _compared(data: BenchData, what: str) -> tuple[str, list[str]]:
    """One entry of ``monitoring_overhead``: its label, then phase 3's and phase 4's own figures."""
    if what == "server CPU per POST /tasks":
        cpu = [_row(data, "submit", phase=phase, route="POST /tasks")["server_cpu_ms_per_request"] for phase in (3, 4)]
        return f"server CPU per `POST /tasks`, {data['config']['concurrency']} clients", [f"{_num(ms, 2)} ms" for ms in cpu]
    workers = int(re.sub(r"\D", "", what) or 1)
    rates = [_row(data, "drain", phase=phase, workers=workers)["steady_tasks_per_second"] for phase in (3, 4)]
    return what, [f"{_num(rate)} tasks/s" for rate in rates]


@_figures("Phase 4 against phase 3", "--phases 3,4 --drain-phases 3,4", "monitoring_overhead")
def bench_monitoring(data: BenchData) -> str:
    """Phase 4 against phase 3 in the same run: what monitoring costs, against its budget."""
    overhead: dict[str, float] = data["monitoring_overhead"]
    budget = bench_targets().monitoring_overhead
    records = []
    for what, cost in overhead.items():
        try:
            label, (phase3, phase4) = _compared(data, what)
        except MissingPart:
            label, phase3, phase4 = what, "–", "–"
        verdict = "within" if cost <= budget else "**over**"
        records.append(
            {
                "measured": label,
                "phase 3": phase3,
                "phase 4": phase4,
                f"phase 4's extra cost (budget {budget * 100:.0f} %)": f"{_percent(cost, digits=1, signed=True)}: {verdict}",
            }
        )
    table = _table(records)
    if not any(what.startswith("drain") for what in overhead):
        table += "\n\n" + _not_run("The drains of phases 3 and 4 side by side", "--drain-phases 3,4")
    return table


def _within(row: Row) -> str:
    return "yes" if row["within_budget"] else "**no**"


@_figures("(c) `GET /tasks` on a large table", "--phases '' --drain-tasks 0 --list-rows 1000000", "listing")
def bench_listing(data: BenchData) -> str:
    """Part (c): each list query on each database, its matches, median and p95, against the budget."""
    rows, budget = data["listing"], bench_targets().list_query_ms
    records = [
        {
            "database": str(row["database"]),
            "query": row["query"] if row["served"] else f"*not served:* {row['query']}",
            "matches": f"{row['total']:,}" + ("" if row["total_is_exact"] else "+"),
            "median ms": _num(row["median_ms"], 2),
            "p95 ms": _num(row["p95_ms"], 2),
            f"p95 < {budget:.0f} ms": _within(row) if row["served"] else "–",
        }
        for row in rows
    ]
    filled = ", ".join(f"{_num(seconds, 0)} s on {db}" for db, seconds in (data.get("listing_seed_seconds") or {}).items())
    return (
        f"{rows[0]['rows']:,} tasks, {rows[0]['runs']} measured runs per query"
        + (f"; filling the table took {filled}" if filled else "")
        + ". A + after the matches is a total capped at its bound (`total_is_exact: false`).\n\n"
        + _table(records)
    )


@_figures("(d) `GET /stats` on a large table", "--phases '' --drain-tasks 0 --stats-rows 1000000", "stats_query")
def bench_stats(data: BenchData) -> str:
    """Part (d): ``GET /stats`` per database, span of history and window, and the aggregates' build."""
    rows, budget = data["stats_query"], bench_targets().stats_ms
    records = [
        {
            "database": str(row["database"]),
            "span": str(row["span"]),
            "window": str(row["window"]),
            "build s": _num(row["build_seconds"]),
            "tasks ended in window": f"{row['ended_in_window']:,}",
            "median ms": _num(row["median_ms"]),
            "p95 ms": _num(row["p95_ms"]),
            f"p95 < {budget:.0f} ms": _within(row),
            "CPU ms (median)": _num(row["cpu_median_ms"]),
        }
        for row in rows
    ]
    return f"{rows[0]['rows']:,} tasks per table, {rows[0]['runs']} measured runs per window.\n\n{_table(records)}"


def _dashboard_record(row: Row) -> dict[str, str]:
    """One condition of part (e); what the dashboards saw is only there with dashboards open."""
    watched = bool(row["dashboards"])
    return {
        "condition": str(row["condition"]),
        "req/s": _num(row["requests_per_second"], 0),
        "× alone": _times(row["throughput_x_alone"]) if watched else "base",
        "p50 ms": _num(row["p50_ms"]),
        "p99 ms": _num(row["p99_ms"]),
        "server CPU ms/req": _num(row["server_cpu_ms_per_request"], 2),
        "errors": str(row["errors"]),
        "`/stats` answers": str(row["stats_polls"]) if watched else "–",
        "`/stats` p50 ms": _num(row["stats_poll_median_ms"]) if watched else "–",
        "computed": str(row["stats_computations"]) if watched else "–",
    }


@_figures("(e) `POST /tasks` with dashboards open", "--phases '' --drain-tasks 0 --dashboards 10", "dashboards")
def bench_dashboards(data: BenchData) -> str:
    """Part (e): phase 4's ``POST /tasks`` alone and with dashboards polling ``/stats``, and the verdict."""
    table = _table([_dashboard_record(row) for row in data["dashboards"]])
    summary = data.get("dashboards_summary")
    if not summary:
        return table
    return (
        f"{table}\n\nThe rounds' ratios, in order: {', '.join(_times(r) for r in summary['round_ratios']) or '–'}; "
        f"their median {_times(summary['median_round_ratio'])}. The target, at most {summary['slowdown_budget']:.0%} "
        f"slower with the dashboards open: {_verdict(summary['within_target'])}."
    )


def _steady(data: BenchData, label: str, workers: int) -> float:
    rate: float = _row(data, "drain", label=label, workers=workers)["steady_tasks_per_second"]
    return rate


@_figures("The drains of phase 4 and phase 5", "--drain-phases 4,5")
def phase5_drain(data: BenchData) -> str:
    """Chapter 5's drain figures, phase 4 against the pool, from docs/data/bench.json."""
    p4, p5 = ([_steady(data, label, n) for n in (1, 2)] for label in ("phase 4", "phase 5"))
    return (
        f"Figures from `make bench` ({data['config']['drain_tasks']:,} no-op tasks already queued, SQLite, "
        f"steady rate, {data['machine']['date']}, with the speed-ups of the next section; "
        "[Benchmarks](benchmarks.md) has the whole run): "
        f"phase 4 drains {_num(p4[0])} tasks/s with one worker and {_num(p4[1])} with two; the pool "
        f"{_num(p5[0])} and {_num(p5[1])}, **{p5[0] / p4[0]:.1f}× and {p5[1] / p4[1]:.1f}× phase 4**."
    )


@_figures("Phase 5 against phase 4 and Celery", "--phases 4,5 --drain-phases 4,5")
def phase5_summary(data: BenchData) -> str:
    """Chapter 5's "what it adds up to" table, from docs/data/bench.json."""
    p4, p5, celery = (_steady(data, label, 2) for label in ("phase 4", "phase 5", "Celery"))
    s4, s5 = (_row(data, "submit", phase=phase, route="POST /tasks") for phase in (4, 5))
    m4, m5 = (_row(data, "drain_memory", label=label, workers=2) for label in ("phase 4", "phase 5"))
    # The scaling is each system's 2 ÷ 1, the drain rows' own ratio.
    celery_scaling, phase5_scaling = (
        _row(data, "drain", label=label, workers=2)["steady_x_1_worker"] for label in ("Celery", "phase 5")
    )
    rows = [
        "| | before phase 5 | phase 5 |",
        "|---|---|---|",
        f"| drain, 2 processes, steady | phase 4: {_num(p4)} tasks/s | {_num(p5)} tasks/s ({p5 / p4:.1f}×) |",
        f"| Celery prefork, same attempt and writes, 2 processes | | {_num(celery)} tasks/s: phase 5 is {p5 / celery:.2f}× |",
        f"| a second process, steady drain | Celery: {celery_scaling:.2f}× one process | {phase5_scaling:.2f}× one process |",
        f"| `POST /tasks`, {data['config']['concurrency']} clients "
        f"| phase 4: {s4['requests_per_second']:,.0f} req/s, p99 {s4['p99_ms']:.1f} ms, "
        f"{s4['server_cpu_ms_per_request']:.2f} ms CPU | {s5['requests_per_second']:,.0f} req/s, "
        f"p99 {s5['p99_ms']:.1f} ms, {s5['server_cpu_ms_per_request']:.2f} ms CPU |",
        f"| resident memory per worker process | phase 4: {m4['worker_process_peak_rss_mb']:.0f} MB "
        f"| {m5['worker_process_peak_rss_mb']:.0f} MB |",
        f"| resident memory for 2 workers, all processes | phase 4: {m4['total_peak_rss_mb']:.0f} MB "
        f"| {m5['total_peak_rss_mb']:.0f} MB |",
    ]
    return "\n".join(rows)


@_figures("The memory of phase 5's drain", "--drain-phases 5")
def phase5_memory(data: BenchData) -> str:
    """Chapter 5b's pool process and supervisor as the run measured them, against phase 5's targets."""
    row = _row(data, "drain_memory", label="phase 5", workers=2)
    targets = data.get("drain_memory_targets_mb") or {}
    return (
        f"**{_num(row['worker_process_peak_rss_mb'], 0)} MB per pool process** "
        f"(target ≤ {_num(targets.get('worker_process_rss'), 0)}) and {_num(row['rest_peak_rss_mb'], 0)} MB for the "
        f"supervisor (target ≤ {_num(targets.get('rest_rss'), 0)}) in the run of bench.json: "
        f"{_verdict(row.get('within_targets'))}."
    )


@_figures("The drains and submits of phase 5", "--phases 5 --drain-phases 4,5")
def sizing_measured(data: BenchData) -> str:
    """Chapter 6b's sizing inputs: what one host measured, from docs/data/bench.json, for the calculations after it."""
    one, two = (_row(data, "drain", label="phase 5", workers=n) for n in (1, 2))
    forking = _row(data, "drain", label="phase 4", workers=1)
    submit = _row(data, "submit", phase=5, route="POST /tasks")
    memory = _row(data, "drain_memory", label="phase 5", workers=2)
    measured = [
        ("one pool process, no-op tasks", f"{_num(one['steady_tasks_per_second'])} tasks/s", "phase 5, 1 process, steady"),
        (
            "a pod of two pool processes",
            f"{_num(two['steady_tasks_per_second'])} tasks/s, {_times(two['steady_x_1_worker'])} one",
            "phase 5, 2 processes, steady",
        ),
        ("phase 4's forking RQ worker, for scale", f"{_num(forking['steady_tasks_per_second'])} tasks/s", "phase 4, 1 worker"),
        (
            "a submit, `POST /tasks`, one API process",
            f"{_num(submit['requests_per_second'])} req/s, {_num(submit['server_cpu_ms_per_request'], 2)} ms of CPU each",
            f"phase 5, {data['config']['concurrency']} clients",
        ),
        (
            "memory: pool process, supervisor",
            f"{_num(memory['worker_process_peak_rss_mb'], 0)} MB, {_num(memory['rest_peak_rss_mb'], 0)} MB peak",
            "`drain_memory`, phase 5, 2 processes",
        ),
    ]
    records = [{"what": what, "figure": figure, "in bench.json": where} for what, figure, where in measured]
    return (
        f"What the benchmark measured (docs/data/bench.json, the run of {data['machine']['date']}, SQLite; "
        "[Benchmarks](benchmarks.md) has the method and the whole run):\n\n" + _table(records)
    )


# ---------------------------------------------------------------------------------------------
# Reading time: one sitting per chapter. Prose at 200 words a minute, code (every line of a
# fenced block: listings, diffs, output, diagrams' source) at 30 lines a minute; the markers,
# HTML comments, are not read. tests/docs/test_reading_time.py holds each page to 30 minutes.

WORDS_PER_MINUTE = 200
CODE_LINES_PER_MINUTE = 30


@dataclass(frozen=True)
class Reading:
    lines: int
    words: int
    code_lines: int

    @property
    def minutes(self) -> float:
        return self.words / WORDS_PER_MINUTE + self.code_lines / CODE_LINES_PER_MINUTE


def reading(markdown: str) -> Reading:
    text = re.sub(r"<!--.*?-->", "", markdown, flags=re.DOTALL)
    words = code = 0
    fence: str | None = None
    for line in text.splitlines():
        if fence is None:
            opening = re.match(r"^\s*(`{3,}|~{3,})", line)
            if opening:
                fence = opening.group(1)
                continue
            words += len(re.findall(r"[\w'’-]+", re.sub(r"\]\([^)]*\)", "]", line)))
        elif line.strip() == fence:
            fence = None
        else:
            code += 1
    return Reading(lines=len(markdown.splitlines()), words=words, code_lines=code)


def reading_of(path: Path) -> Reading:
    """The reading time of one page."""
    return reading(path.read_text())


#: The front page's map: each page of the tutorial, what the reader runs in it, and what they
#: will have seen break. The minutes are computed from the page itself (``reading_of``).
CHAPTER_MAP: tuple[tuple[str, str, str, str], ...] = (
    (
        "01-basic.md",
        "1 · BackgroundTasks",
        "`make run PHASE=1`, `curl` a task, `kill -9` the server",
        "a task left `running` for ever when the server dies; `/health` taking 5 s behind slow tasks",
    ),
    (
        "02-queue.md",
        "2 · A real queue",
        "Redis, an API and an RQ worker, by hand",
        "a killed work horse leaving its task `running`; Redis shut down under the API (a `503`)",
    ),
    (
        "03-retry.md",
        "3 · Retries (part 1)",
        "`make run PHASE=3`, a flaky task, the same request twice",
        "a task that always fails, ending as a dead letter you send back",
    ),
    (
        "03b-recovery.md",
        "3b · Crash recovery (part 2)",
        "Redis, an API and two workers, by hand",
        "a worker `SIGKILL`ed mid-task, its task finished by another worker",
    ),
    (
        "04-monitoring.md",
        "4 · Metrics (part 1)",
        "an API and a worker with its own `/metrics`",
        "a worker `SIGKILL`ed, its counts adopted by the next one",
    ),
    (
        "04b-logs-stats.md",
        "4b · Logs and `/stats` (part 2)",
        "`make run PHASE=4 WORKERS=2`, a request id, `/stats`",
        "an oversized request id, refused and replaced",
    ),
    (
        "05-scaling.md",
        "5 · Priorities (part 1)",
        "`make run PHASE=5 WORKERS=2`, an urgent task, `/stats`",
        "Redis shut down, the status still read from the database",
    ),
    (
        "05b-pool.md",
        "5b · A worker pool (part 2)",
        "a pool of two processes, the priority demo",
        "a pool process `SIGKILL`ed and replaced by the supervisor",
    ),
    (
        "06-docker.md",
        "6 · Docker",
        "`make compose-up`: PostgreSQL, Redis, the API, workers, Prometheus",
        "a worker container `docker kill`ed, its task recovered",
    ),
    (
        "06b-beyond-one-host.md",
        "6b · Beyond one host (part 2)",
        "`kubectl kustomize` of the manifests; a cluster of your own (kind, k3d)",
        "a grace shorter than the drain, caught; a worker cut off by the network, its task taken over",
    ),
)


def chapter_map(docs: Path = REPO_ROOT / "docs") -> str:
    """The front page's table: minutes (computed from each page), what you run, what breaks."""
    rows = ["| chapter | reading | you run | you will have seen break |", "|---|---|---|---|"]
    for name, title, runs, breaks in CHAPTER_MAP:
        minutes = reading_of(docs / name).minutes
        rows.append(f"| [{title}]({name}) | {minutes:.0f} min | {runs} | {breaks} |")
    return "\n".join(rows)
