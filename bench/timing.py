"""The two figures every timed query reports: the median and the 95th percentile of its runs."""

from __future__ import annotations

import statistics
from collections.abc import Sequence

#: The percentile a query budget is checked at.
BUDGET_PERCENTILE = 95


def median_ms(samples_ms: Sequence[float]) -> float:
    return statistics.median(samples_ms) if samples_ms else float("nan")


def p95_ms(samples_ms: Sequence[float]) -> float:
    """The 95th percentile, interpolated between runs; with one run, that run."""
    if len(samples_ms) < 2:
        return samples_ms[0] if samples_ms else float("nan")
    return statistics.quantiles(samples_ms, n=100, method="inclusive")[BUDGET_PERCENTILE - 1]
