"""Every command a chapter tells the reader to run is run here, and shows what the chapter shows.

``tasklab_cli.runblocks`` describes the ``<!-- run -->`` markers and how shown output is compared.
Each chapter runs in order, in a fresh sandbox, against fresh processes (its own Redis, its own
database, its servers on free ports); what a chapter starts in the background is stopped with
Ctrl-C at its end, and nothing may survive. The terminal summary prints how many blocks ran and
how long each chapter took (tests/docs/conftest.py). The sandbox's PATH is a fresh machine's: no
``redis-server``, Prometheus, Chromium or Docker (``runblocks.FRESH_MACHINE_HIDES``), so these runs
are also the check that chapters 1 to 5 need nothing but Python. Chapter 6's blocks need Docker:
``make compose-test`` runs them (``python -m tasklab_cli.runblocks --docker``).

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

    assert {
        "01-basic.md",
        "02-queue.md",
        "03-retry.md",
        "03b-recovery.md",
        "04-monitoring.md",
        "04b-logs-stats.md",
        "05-scaling.md",
        "05b-pool.md",
        "06b-beyond-one-host.md",
    } <= names


def test_chapter_6_runs_its_commands_in_the_docker_job() -> None:
    """Guards ``make compose-test``'s last step: the Docker chapter's run blocks are still marked."""
    blocks = runblocks.scan(runblocks.REPO_ROOT / "docs" / "06-docker.md")
    commands = [command.text for block in blocks if block.docker for command in block.commands]

    assert runblocks.chapters(docker=True) == [runblocks.REPO_ROOT / "docs" / "06-docker.md"]
    assert any("make compose-up" in text for text in commands)
    assert any("phase6_docker.verify" in text for text in commands)


@pytest.mark.timeout(600)
@pytest.mark.parametrize("chapter", CHAPTERS, ids=[path.stem for path in CHAPTERS])
def test_the_chapter_runs_as_shown(chapter: Path) -> None:
    run = runblocks.ChapterRun(chapter)
    try:
        run.run()
    finally:
        RUN_REPORT.append((chapter.name, run.blocks_run, run.commands_run, run.seconds))
