"""The phase-to-phase diff pages (docs/diffs/) are exactly what the phase folders produce now."""

from __future__ import annotations

import shutil
from pathlib import Path

from tasklab_cli import diffpages


def test_the_diff_pages_are_up_to_date() -> None:
    problems = diffpages.problems()

    assert not problems, "stale diff pages (run `make docs`):\n" + "\n".join(problems)


def test_there_is_one_page_per_consecutive_pair_of_phases() -> None:
    pages = diffpages.expected_pages(diffpages.REPO_ROOT)

    assert {
        Path("docs/diffs/phase1-to-phase2.md"),
        Path("docs/diffs/phase2-to-phase3.md"),
        Path("docs/diffs/phase3-to-phase4.md"),
    } <= set(pages)
    assert len(pages) == len(diffpages.phase_folders(diffpages.REPO_ROOT)) - 1


def test_a_page_lists_every_file_and_links_each_changed_one_to_its_diff(tmp_path: Path) -> None:
    for folder, files in {
        "phase1_basic": {"api.py": "a = 1\n", "same.py": "x\n"},
        "phase2_queue": {"api.py": "a = 2\n", "same.py": "x\n", "jobs.py": "j\n"},
    }.items():
        (tmp_path / folder / "__pycache__").mkdir(parents=True)
        (tmp_path / folder / "__pycache__" / "api.cpython-311.pyc").write_bytes(b"\0")
        for name, text in files.items():
            (tmp_path / folder / name).write_text(text)

    [text] = diffpages.expected_pages(tmp_path).values()

    assert "| [`api.py`](#file-api-py) | changed | +1 −1 |" in text
    assert "| [`jobs.py`](#file-jobs-py) | added | +1 −0 |" in text
    assert "| `same.py` | unchanged |  |" in text
    assert "## `api.py` {#file-api-py}" in text and "-a = 1\n+a = 2" in text
    assert "--- /dev/null\n+++ b/phase2_queue/jobs.py" in text
    assert "pycache" not in text


def test_write_makes_the_pages_and_check_sees_a_change_in_a_phase_folder(tmp_path: Path) -> None:
    for folder in ["phase1_basic", "phase2_queue"]:
        shutil.copytree(diffpages.REPO_ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__"))
    assert diffpages.problems(tmp_path) == ["docs/diffs/phase1-to-phase2.md: missing (run make docs)"]

    diffpages.write(tmp_path)
    assert diffpages.problems(tmp_path) == []

    with (tmp_path / "phase2_queue" / "api.py").open("a") as file:
        file.write("# one more line\n")
    assert diffpages.problems(tmp_path) == ["docs/diffs/phase1-to-phase2.md: stale, the phase folders changed (run make docs)"]
    (tmp_path / "docs" / "diffs" / "phase7-to-phase8.md").write_text("old\n")
    diffpages.write(tmp_path)
    assert diffpages.problems(tmp_path) == []
    assert not (tmp_path / "docs" / "diffs" / "phase7-to-phase8.md").exists()
