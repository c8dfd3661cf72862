"""Copy forward, kept honest: each phase folder differs from the previous one only where its README says.

The repository's own folders are checked as they are; the failure and the repair are shown on a
copy of them in a throwaway git repository, edited on purpose.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tasklab_cli import copyforward
from tasklab_cli.copyforward import PHASE_FOLDERS, REPO_ROOT, carry, check

#: A file every phase from 1 to 4 keeps unchanged after phase 2 introduces it, and phase 5 changes.
CARRIED = "db.py"


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


@pytest.fixture
def phases_repo(tmp_path: Path) -> Path:
    """The six phase folders (and shared/) in a fresh git repository, committed."""
    for folder in (*PHASE_FOLDERS, "shared"):
        shutil.copytree(REPO_ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__"))
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", "-A")
    git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "phases")
    return tmp_path


def test_the_phase_folders_differ_only_where_their_readmes_say() -> None:
    assert check() == []


def test_an_edit_to_an_unchanged_copy_is_reported_with_its_file(phases_repo: Path) -> None:
    copy = phases_repo / "phase3_retry" / CARRIED
    copy.write_text(copy.read_text() + "\n# an edit made here only\n")

    assert check(phases_repo) == [
        f"phase3_retry/{CARRIED}: differs from phase2_queue/{CARRIED}, not listed as changed (make carry-forward?)",
        f"phase4_monitoring/{CARRIED}: differs from phase3_retry/{CARRIED}, not listed as changed (make carry-forward?)",
    ]


def test_a_new_file_must_be_listed_as_added(phases_repo: Path) -> None:
    (phases_repo / "phase2_queue" / "extra.py").write_text('"""Not in the README."""\n')

    assert check(phases_repo) == [
        "phase2_queue/extra.py: new since phase1_basic, not listed as added",
        "phase3_retry/extra.py: in phase2_queue but not here, not listed as removed",
    ]


def test_carry_forward_copies_a_fix_into_every_unchanged_copy(phases_repo: Path) -> None:
    source = phases_repo / "phase2_queue" / CARRIED
    source.write_text(source.read_text().replace("Engines for the task store", "Engines for the tasks' store"))

    done = carry(phases_repo)

    assert f"phase3_retry/{CARRIED}: copied from phase2_queue" in done
    assert f"phase4_monitoring/{CARRIED}: copied from phase3_retry" in done
    assert check(phases_repo) == []


def test_carry_forward_merges_a_fix_into_a_copy_its_phase_changed(phases_repo: Path) -> None:
    source = phases_repo / "phase2_queue" / CARRIED
    source.write_text(source.read_text().replace("Engines for the task store", "Engines for the tasks' store"))

    done = carry(phases_repo)

    fixed = (phases_repo / "phase5_scaling" / CARRIED).read_text()
    assert "Engines for the tasks' store" in fixed
    assert "writer_turns" in fixed  # phase 5's own change to the file is kept
    assert any(line.startswith(f"phase5_scaling/{CARRIED}: merged") for line in done)
    assert check(phases_repo) == []


def test_the_command_exits_1_and_names_the_file(
    phases_repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = phases_repo / "phase3_retry" / CARRIED
    copy.write_text(copy.read_text() + "\n# drift\n")
    monkeypatch.setattr(copyforward, "REPO_ROOT", phases_repo)
    monkeypatch.setattr(copyforward.check, "__defaults__", (phases_repo,))

    assert copyforward.main(["check"]) == 1
    assert f"phase3_retry/{CARRIED}: differs" in capsys.readouterr().out
