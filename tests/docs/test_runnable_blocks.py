"""Every command a chapter tells the reader to run is run here, and shows what the chapter shows.

``tasklab_cli.runblocks`` describes the ``<!-- run -->`` markers and how shown output is compared.
Each chapter runs in order, in a fresh sandbox, against fresh processes (its own Redis, its own
database, its servers on free ports); what a chapter starts in the background is stopped with
Ctrl-C at its end, and nothing may survive. The terminal summary prints how many blocks ran and
how long each chapter took (tests/docs/conftest.py).

If a test here fails, a command in the chapter no longer works as shown, or the code prints
something else now: run the command, and fix the chapter or the code.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tasklab_cli import runblocks
from tests.docs.conftest import RUN_REPORT

CHAPTERS = runblocks.chapters()


def test_every_chapter_of_phases_1_to_5_has_runnable_blocks() -> None:
    """Guards the test below against passing because the markers went missing."""
    names = {path.name for path in CHAPTERS}

    assert {"01-basic.md", "02-queue.md", "03-retry.md", "04-monitoring.md", "05-scaling.md"} <= names


@pytest.mark.timeout(600)
@pytest.mark.parametrize("chapter", CHAPTERS, ids=[path.stem for path in CHAPTERS])
def test_the_chapter_runs_as_shown(chapter: Path) -> None:
    run = runblocks.ChapterRun(chapter)
    try:
        run.run()
    finally:
        RUN_REPORT.append((chapter.name, run.blocks_run, run.commands_run, run.seconds))
