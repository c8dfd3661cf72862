"""Chapters 1 to 5 are repeatable on macOS and Linux: their commands use portable forms.

Phases 1 to 5 promise to need nothing but Python (and curl). A reader on macOS has BSD's ``ps``,
``pgrep``, ``sed`` and ``date``, not GNU's, so a command a chapter tells them to type uses only
what both accept: ``pgrep -P`` for a process's children, ``kill`` with ``$(pgrep …)``, a Python
one-liner where a GNU option would be needed. A command that is Linux-only anyway must say so on
its own line (``# Linux only``) and the chapter gives the other form next to it.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHAPTERS = sorted(path for path in (ROOT / "docs").glob("0[1-5]*.md"))

#: GNU or Linux forms that BSD/macOS tools refuse or do not have, and what to write instead.
LINUX_ONLY = {
    r"\bps\b[^|;]*--ppid": "ps -o … -p $(pgrep -d, -P PID)",
    r"\bpkill\b[^|;]*--parent": "kill $(pgrep -P PID)",
    r"\bps\b[^|;]*\s-o\s*\S*\bcmd\b": "ps -o command",
    r"/proc/": "psutil, in a Python one-liner",
    r"\bsed\s+-i\s+['\"]": "sed -i.bak … (BSD sed needs the suffix) or Python",
    r"\bdate\b[^|;]*%N": "python -c 'import time; print(time.time())'",
    r"\breadlink\s+-f\b": "python -c 'import os,sys; print(os.path.realpath(sys.argv[1]))'",
    r"\bnproc\b": "python -c 'import os; print(os.cpu_count())'",
    r"\bgrep\s+-\w*P": "grep -E",
    r"\bstat\s+-c\b": "python -c 'import os,sys; print(os.stat(sys.argv[1]))'",
    r"\bxargs\s+-r\b": "xargs (BSD xargs already skips empty input)",
    r"\bsetsid\b": "a Python one-liner with os.setsid",
    r"(?:^|[;&|]\s*)timeout\s+\d": "the command's own timeout option",
}
SAYS_LINUX_ONLY = re.compile(r"#.*\bLinux only\b", re.IGNORECASE)
SHELLS = {"sh", "shell", "bash"}


def commands(markdown: str) -> list[tuple[int, str]]:
    """Every command a reader is shown to type: ``$`` lines of console blocks, all lines of sh ones."""
    found: list[tuple[int, str]] = []
    fence: str | None = None
    language = ""
    for number, line in enumerate(markdown.splitlines(), 1):
        if fence is None:
            opening = re.match(r"^(`{3,})([\w+-]*)", line)
            if opening:
                fence, language = opening.group(1), opening.group(2)
        elif line.strip() == fence:
            fence = None
        elif language == "console" and line.startswith("$ "):
            found.append((number, line[2:]))
        elif language in SHELLS and line.strip() and not line.lstrip().startswith("#"):
            found.append((number, line))
    return found


def linux_only(command: str) -> list[str]:
    if SAYS_LINUX_ONLY.search(command):
        return []
    return [instead for pattern, instead in LINUX_ONLY.items() if re.search(pattern, command)]


def test_the_commands_of_chapters_1_to_5_run_on_macos_and_linux() -> None:
    problems = [
        f"{path.name}:{number}: {command.strip()}  (instead: {'; '.join(instead)})"
        for path in CHAPTERS
        for number, command in commands(path.read_text())
        if (instead := linux_only(command))
    ]
    assert not problems, "Linux-only commands:\n" + "\n".join(problems)


def test_the_check_knows_the_linux_only_forms() -> None:
    """Guards the test above, with the forms chapters 2 and 3 used to have."""
    assert linux_only("ps --ppid $WORKER -o pid=,cmd=")
    assert linux_only("pkill -9 --parent $WORKER")
    assert linux_only("ps --ppid $WORKER  # Linux only; on macOS: ps -o pid= -p $(pgrep -P $WORKER)") == []
    assert linux_only("kill -9 $(pgrep -P $WORKER)") == []
    assert linux_only("ps -ww -o pid,pgid,command -p $(pgrep -d, -P 42)") == []
    markdown = "```console\n$ ps --ppid 1\nps output\n```\n\n```text\n$ not a command\n```\n"
    assert commands(markdown) == [(2, "ps --ppid 1")]
