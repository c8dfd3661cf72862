"""Exponential backoff with a cap and jitter, as the whole-second list RQ's ``Retry`` wants.

The wait before retry *n* (counting from 0) is::

    delay(n)  = min(cap, base · factor ** n)                 1, 2, 4, 8 … 60, 60 (base 1, factor 2, cap 60)
    wait(n)   = delay(n) − U(0, jitter · delay(n))           "equal jitter" with jitter = 0.5

Exponential growth gives a struggling dependency room to recover; the cap keeps a task from
waiting hours; jitter spreads out tasks that failed together (the same outage) so they do not
all come back in the same second and knock the dependency over again. Jitter is subtracted, so
the cap stays a true upper bound.

RQ's scheduler works in whole seconds and ``Retry(interval=…)`` takes ints: each wait is
rounded, and a wait of a second or more never rounds down to zero.
"""

from __future__ import annotations

import random


def backoff_delay(retry_number: int, *, base: float, factor: float, cap: float) -> float:
    """The wait before retry ``retry_number`` (0 is the first retry), before jitter."""
    return min(cap, base * factor**retry_number)


def backoff_intervals(
    retries: int,
    *,
    base: int,
    factor: float = 2.0,
    cap: int = 60,
    jitter: float = 0.0,
    rng: random.Random | None = None,
) -> list[int]:
    """The waits, in whole seconds, before each of ``retries`` retries.

    A pure function of its arguments and ``rng``: pass ``random.Random(seed)`` to get the same
    list twice (the tests do), or nothing to use the module's generator.
    """
    if retries < 0:
        raise ValueError("retries must be >= 0")
    if not 0.0 <= jitter <= 1.0:
        raise ValueError("jitter is a fraction between 0 and 1")
    draw = (rng or random).random
    intervals: list[int] = []
    for n in range(retries):
        delay = backoff_delay(n, base=base, factor=factor, cap=cap)
        wait = delay - jitter * delay * draw()
        # Rounding must not turn a 1 s wait into an instant retry that hammers what just failed.
        intervals.append(max(1, round(wait)) if delay >= 1 else round(wait))
    return intervals
