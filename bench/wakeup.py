"""How long one process takes to wake another: the cost under every Redis and database round trip.

A worker's no-op task is a chain of round trips (BRPOP, the claim, the completion, RQ's
bookkeeping): each one puts the worker to sleep until Redis answers. On most machines waking
a sleeping process costs a few microseconds. On some virtual machines an *idle* core halts and
the host must wake it, which costs ten times more; there a lone worker, whose peer (Redis) sits
on the other, idle core, drains far slower than the CPU allows, while two busy workers keep
both cores awake and seem to scale better than 2×. Printing this figure beside the drain rates
tells a reader which kind of machine produced them.

The measurement: two processes pass one byte back and forth over a pair of pipes. Free to run
on any core, the round trip includes waking a core; pinned to one core, it does not.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager

#: Round trips per measurement: about 0.1–0.5 s, enough for a stable median.
ROUNDS = 2_000


@contextmanager
def pinned_to_one_core(pin: bool) -> Iterator[None]:
    """Run the body (and any child it forks) on a single core, then restore the affinity."""
    if not pin or not hasattr(os, "sched_setaffinity"):
        yield
        return
    allowed = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(allowed)})
    try:
        yield
    finally:
        os.sched_setaffinity(0, allowed)


def echo_forever(inbox: int, outbox: int) -> None:
    """The child's whole life: send back every byte until the parent closes its end."""
    while byte := os.read(inbox, 1):
        os.write(outbox, byte)


def round_trip_microseconds(*, one_core: bool, rounds: int = ROUNDS) -> float | None:
    """Median time for a byte to reach a sleeping child and come back, in µs; None without fork()."""
    if not hasattr(os, "fork"):
        return None
    to_child_read, to_child_write = os.pipe()
    to_parent_read, to_parent_write = os.pipe()
    with pinned_to_one_core(one_core):
        child = os.fork()
        if child == 0:
            # The child touches nothing but its pipes and leaves with _exit, so the parent's
            # threads, buffers and atexit handlers never run twice.
            os.close(to_child_write)
            os.close(to_parent_read)
            echo_forever(to_child_read, to_parent_write)
            os._exit(0)
        os.close(to_child_read)
        os.close(to_parent_write)
        samples: list[int] = []
        try:
            for _ in range(rounds):
                sent = time.perf_counter_ns()
                os.write(to_child_write, b"x")
                os.read(to_parent_read, 1)
                samples.append(time.perf_counter_ns() - sent)
        finally:
            os.close(to_child_write)  # the child's read returns b"" and it exits
            os.close(to_parent_read)
            os.waitpid(child, 0)
    return statistics.median(samples) / 1_000


def wakeup_fact() -> str:
    """The machine-table line: both round trips, and what a large gap between them means."""
    any_core = round_trip_microseconds(one_core=False)
    one_core = round_trip_microseconds(one_core=True)
    if any_core is None or one_core is None:
        return "not measured (no fork() on this platform)"
    return (
        f"{any_core:.0f} µs between two processes free to use any core, {one_core:.0f} µs on one core "
        "(a pipe round trip, median; a much larger first figure means idle cores wake slowly, "
        "which slows a lone worker's every Redis round trip more than two busy ones')"
    )
