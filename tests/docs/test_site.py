"""The tutorial builds as a site with ``mkdocs build --strict``: no broken link, no missing
anchor, no page outside the navigation (mkdocs.yml's ``validation`` makes each a warning, and
``--strict`` makes any warning a failure)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.tools import require_module

ROOT = Path(__file__).resolve().parents[2]


def build(config: Path, site: Path) -> subprocess.CompletedProcess[str]:
    require_module("mkdocs", "docs")  # the site's extra comes with make site: skipped without it
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(config), "--site-dir", str(site)],
        capture_output=True,
        text=True,
        timeout=300,
        env={"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin"},
    )


@pytest.mark.timeout(300)
def test_the_site_builds_strictly_with_no_warning(tmp_path: Path) -> None:
    result = build(ROOT / "mkdocs.yml", tmp_path / "site")

    warnings = [line for line in result.stderr.splitlines() if "WARNING" in line]
    assert result.returncode == 0 and not warnings, "\n".join(warnings) or result.stderr[-3000:]
    for page in ["index.html", "01-basic/index.html", "04-monitoring/index.html", "diffs/phase1-to-phase2/index.html"]:
        assert (tmp_path / "site" / page).is_file(), page
    assert 'class="mermaid"' in (tmp_path / "site" / "index.html").read_text()


@pytest.mark.timeout(300)
def test_a_broken_anchor_fails_the_strict_build(tmp_path: Path) -> None:
    """Guards the test above: the configuration really turns a missing anchor into a failure."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text("# Home\n\nSee [the lifecycle](other.md#no-such-heading).\n")
    (docs / "other.md").write_text("# Other\n\n## A heading\n")
    config = (ROOT / "mkdocs.yml").read_text().split("\nnav:", 1)[0].replace("docs_dir: docs", f"docs_dir: {docs}")
    rest = (ROOT / "mkdocs.yml").read_text().split("\nvalidation:", 1)[1]
    (tmp_path / "mkdocs.yml").write_text(
        config + "\nnav:\n  - index.md\n  - other.md\n\nvalidation:" + rest.replace("stylesheets/extra.css", "index.md")
    )

    result = build(tmp_path / "mkdocs.yml", tmp_path / "site")

    assert result.returncode != 0
    assert "no-such-heading" in result.stderr
