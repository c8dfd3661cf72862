"""What the docs tests report at the end of a run: the runnable blocks, per chapter."""

from __future__ import annotations

import pytest

#: (chapter, blocks run, commands run, seconds), appended by test_runnable_blocks.py.
RUN_REPORT: list[tuple[str, int, int, float]] = []


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not RUN_REPORT:
        return
    terminalreporter.section("runnable blocks of the chapters")
    for chapter, blocks, commands, seconds in RUN_REPORT:
        terminalreporter.write_line(f"{chapter:20} {blocks:3} blocks {commands:3} commands {seconds:6.1f} s")
    blocks = sum(r[1] for r in RUN_REPORT)
    commands = sum(r[2] for r in RUN_REPORT)
    seconds = sum(r[3] for r in RUN_REPORT)
    terminalreporter.write_line(f"{'total':20} {blocks:3} blocks {commands:3} commands {seconds:6.1f} s")
