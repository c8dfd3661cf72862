"""Run the shell blocks a chapter tells the reader to run, and check the output it shows.

A block meant to be run carries a marker on the line before its fence:

    <!-- run -->
    ```console
    $ curl http://127.0.0.1:8000/health
    {"status":"ok"}
    ```

Lines starting with ``$ `` are commands (a trailing ``\\`` continues one on the next line); the
lines after a command, up to the next one, are output it must print. Options on the marker:

``background``   the block is one command that keeps running (a server): it starts in its own
                 process group, and stops with Ctrl-C (SIGINT) when the chapter ends. A chapter
                 fails if anything it started is still alive 20 s later.
``ready=URL``    (with ``background``) wait until ``URL`` answers 2xx before going on.
``until``        the output shows a state that comes a moment later (a task that completes): run
                 the block's commands again, twice a second, until it appears.
``exit=N``       the command's expected exit status (default 0).
``timeout=S``    bound on each command, or on ``until`` and ``ready`` waits (default 60 s).
``docker``       the block needs a Docker engine: it runs only in phase 6's Docker job
                 (``make compose-test`` calls ``python -m tasklab_cli.runblocks --docker``),
                 never in ``make test``.

How output is compared, so that output captured from a real run stays checkable:

- each shown line must match a whole line of the real output, in order; the real output may
  have more lines in between (logs interleave). Blank shown lines are ignored;
- ``…`` matches any text;
- values that differ on every run are compared by their shape: UUIDs, ISO-8601 timestamps,
  HTTP dates and ``HH:MM:SS`` clock times. A UUID or a loopback address (``127.0.0.1:43365``)
  shown in an output stands, in every later command and output of the chapter, for the value
  the run printed there: a chapter can show ``curl …/tasks/03c51ae1-…`` after the ``POST`` that
  printed that id, or use the address a private Redis printed;
- ports ``8000`` and ``8001`` in a command are free ports the runner picked (8000 is also
  exported as ``PORT``, which ``make run`` reads), and those ports in the output read as 8000
  and 8001 again: a reader's server on 8000 and the test never collide.

Each chapter runs in a fresh sandbox, a temporary directory that mirrors the repository with
symbolic links, so databases the commands create (``.tasklab/``) start empty and stay out of the
checkout. Commands of one chapter share shell variables and the working directory, as they would
in one terminal. ``tests/docs/test_runnable_blocks.py`` runs every chapter.

The sandbox is also a fresh machine: its ``PATH`` hides what phases 1 to 5 promise not to need
(``redis-server``, Prometheus, Chromium, Docker; see ``FRESH_MACHINE_HIDES``), so a chapter that
quietly relied on one of them fails here. In Docker mode the sandbox is a copy, not links (a
Docker build context cannot follow links out of itself), and Docker stays on ``PATH``.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

REPO_ROOT = Path(__file__).resolve().parent.parent

RUN_MARKER = re.compile(r"^<!--\s*run(?::|\s)?(?P<options>[^>]*?)\s*-->\s*$")
FENCE_OPEN = re.compile(r"^(?P<fence>`{3,})(?P<lang>[\w+-]*)\s*$")

#: Ports the chapters use for their servers; each is a free port in the run.
DOCUMENTED_PORTS = ("8000", "8001")
DEFAULT_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0
#: Variables a reader's shell may have that would point a command at something else.
CLEARED_ENVIRONMENT = ("DATABASE_URL", "REDIS_URL", "TASK_TIME_SCALE", "PORT", "WORKERS", "PHASE", "METRICS_DIR", "MAKEFLAGS")
#: Commands a reader of chapters 1 to 5 need not have: the sandbox's PATH leaves them out.
FRESH_MACHINE_HIDES = frozenset(
    {"redis-server", "redis-cli", "prometheus", "promtool", "chromium", "chromedriver", "docker", "dockerd", "docker-compose"}
)
#: Ports a Docker chapter publishes (the API, Prometheus): free ports in the run, like 8000.
DOCKER_PORTS = {"8000": "API_PORT", "9090": "PROMETHEUS_PORT"}

_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
#: Values compared by shape, never by value (most specific first).
VOLATILE = [
    (
        re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})?"),
        r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})?",
    ),
    (
        re.compile(r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} GMT"),
        r"\w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} GMT",
    ),
    (re.compile(r"\b\d{2}:\d{2}:\d{2}\b"), r"\d{2}:\d{2}:\d{2}"),
]
#: Values a run makes up and a chapter then reuses: task ids, a private Redis's address.
_BINDABLE = rf"{_UUID}|127\.0\.0\.1:(?!(?:{'|'.join(DOCUMENTED_PORTS)})\b)\d{{2,5}}"
BINDABLE = re.compile(_BINDABLE)


class BlockFailed(AssertionError):
    """A command failed, timed out, or did not print what the chapter shows."""


@dataclass
class Command:
    text: str
    expected: list[str]


@dataclass
class RunBlock:
    document: Path
    line: int  # 1-based line of the marker
    commands: list[Command]
    background: bool = False
    until: bool = False
    ready: str | None = None
    exit_status: int = 0
    timeout: float = DEFAULT_TIMEOUT
    docker: bool = False

    @property
    def where(self) -> str:
        return f"{self.document.name}:{self.line}"


def parse_options(text: str, block: RunBlock) -> None:
    for option in text.split():
        key, _, value = option.partition("=")
        if key == "background":
            block.background = True
        elif key == "until":
            block.until = True
        elif key == "ready" and value:
            block.ready = value
        elif key == "exit" and value:
            block.exit_status = int(value)
        elif key == "timeout" and value:
            block.timeout = float(value)
        elif key == "docker":
            block.docker = True
        else:
            raise ValueError(f"{block.where}: unknown run option {option!r}")


def parse_console(lines: list[str]) -> list[Command]:
    commands: list[Command] = []
    pending: list[str] | None = None
    for line in lines:
        if pending is not None:
            pending.append(line)
            if not line.endswith("\\"):
                commands.append(Command("\n".join(pending), []))
                pending = None
            continue
        if line.startswith("$ "):
            text = line[2:]
            if text.endswith("\\"):
                pending = [text]
            else:
                commands.append(Command(text, []))
        elif commands:
            commands[-1].expected.append(line)
        elif line.strip():
            raise ValueError(f"output before the first command: {line!r}")
    if pending is not None:
        raise ValueError("a command ends with a continuation backslash")
    return commands


def scan(document: Path) -> list[RunBlock]:
    """Every runnable block of ``document``, in order."""
    lines = document.read_text().splitlines()
    blocks = []
    for index, line in enumerate(lines):
        marker = RUN_MARKER.match(line)
        if marker is None:
            continue
        block = RunBlock(document, index + 1, [])
        parse_options(marker.group("options"), block)
        opening = FENCE_OPEN.match(lines[index + 1]) if index + 1 < len(lines) else None
        if opening is None:
            raise ValueError(f"{block.where}: a run marker must be followed by a fenced block")
        fence = opening.group("fence")
        end = next((i for i in range(index + 2, len(lines)) if lines[i].strip() == fence), None)
        if end is None:
            raise ValueError(f"{block.where}: the fenced block is never closed")
        try:
            block.commands = parse_console(lines[index + 2 : end])
        except ValueError as exc:
            raise ValueError(f"{block.where}: {exc}") from None
        if not block.commands:
            raise ValueError(f"{block.where}: the block has no `$ ` command")
        if block.background and len(block.commands) != 1:
            raise ValueError(f"{block.where}: a background block holds exactly one command")
        blocks.append(block)
    return blocks


# ---------------------------------------------------------------------------------------------
# Matching shown output against real output


@dataclass
class Bindings:
    """What the chapter's shown values stand for in this run."""

    values: dict[str, str] = field(default_factory=dict)
    ports: dict[str, str] = field(default_factory=dict)  # documented port -> port of this run

    def command(self, text: str) -> str:
        text = BINDABLE.sub(lambda m: self.values.get(m.group(0), m.group(0)), text)
        for documented, real in self.ports.items():
            text = re.sub(rf"\b{documented}\b", real, text)
        return text

    def output(self, text: str) -> str:
        for documented, real in self.ports.items():
            text = re.sub(rf"\b{real}\b", documented, text)
        return text


def line_pattern(shown: str, bindings: Bindings) -> tuple[re.Pattern[str], list[str]]:
    """A regular expression for one shown line, and the unbound values it captures, in order."""
    pattern = ""
    captured: list[str] = []
    position = 0
    tokens = [(m.start(), m.end(), "bind", m.group(0)) for m in BINDABLE.finditer(shown)]
    for regex, replacement in VOLATILE:
        for m in regex.finditer(shown):
            if not any(start < m.end() and m.start() < end for start, end, _, _ in tokens):
                tokens.append((m.start(), m.end(), replacement, m.group(0)))
    tokens += [(m.start(), m.end(), ".*?", "…") for m in re.finditer("…", shown)]
    for start, end, kind, value in sorted(tokens):
        if start < position:
            continue
        pattern += re.escape(shown[position:start])
        if kind == "bind":
            if value in bindings.values:
                pattern += re.escape(bindings.values[value])
            elif value in captured:
                pattern += f"(?P=u{captured.index(value)})"
            else:
                pattern += f"(?P<u{len(captured)}>{_BINDABLE})"
                captured.append(value)
        else:
            pattern += kind
        position = end
    pattern += re.escape(shown[position:])
    return re.compile(pattern), captured


def match_output(expected: list[str], actual: str, bindings: Bindings) -> str | None:
    """Bind the shown values and return ``None`` when every shown line appears in order; else why not."""
    lines = [bindings.output(line.rstrip("\r")).rstrip() for line in actual.splitlines()]
    position = 0
    found: dict[str, str] = {}
    for shown in (line.rstrip() for line in expected):
        if not shown.strip():
            continue
        scoped = Bindings({**bindings.values, **found}, bindings.ports)
        pattern, captured = line_pattern(shown, scoped)
        for index in range(position, len(lines)):
            match = pattern.fullmatch(lines[index])
            if match is not None:
                found.update({value: match.group(f"u{i}") for i, value in enumerate(captured)})
                position = index + 1
                break
        else:
            return f"shown line not in the output (after line {position}):\n  {shown}"
    bindings.values.update(found)
    return None


# ---------------------------------------------------------------------------------------------
# Running a chapter


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


SANDBOX_SKIPS = {".tasklab", "site", ".pytest_cache", ".git", ".venv", ".mypy_cache", ".ruff_cache"}


def make_sandbox(root: Path, directory: Path, *, copy: bool = False) -> None:
    """Mirror the checkout in ``directory`` with symbolic links (or copies), without its state.

    ``.venv`` is mirrored one level deeper, with a fresh install stamp, so ``make`` uses the
    installed environment as it is instead of reinstalling it from the sandbox.
    """
    state = shutil.ignore_patterns(
        *SANDBOX_SKIPS, "*.db", "*.db-wal", "*.db-shm", "*.db-writer-turn", "__pycache__", ".env", "secrets"
    )
    for entry in root.iterdir():
        if entry.name in SANDBOX_SKIPS or entry.suffix in {".db", ".db-wal", ".db-shm", ".db-writer-turn"}:
            continue
        if not copy:
            (directory / entry.name).symlink_to(entry)
        elif entry.is_dir():
            shutil.copytree(entry, directory / entry.name, ignore=state)
        else:
            shutil.copy2(entry, directory / entry.name)
    venv = root / ".venv"
    if venv.is_dir():
        (directory / ".venv").mkdir()
        for entry in venv.iterdir():
            if entry.name != ".installed":
                (directory / ".venv" / entry.name).symlink_to(entry)
        (directory / ".venv" / ".installed").touch()


def fresh_machine_path(path: str, directory: Path, hidden: frozenset[str] = FRESH_MACHINE_HIDES) -> str:
    """A ``PATH`` of one directory: links to every command on ``path`` but the ``hidden`` ones."""
    directory.mkdir()
    for entry in path.split(os.pathsep):
        with suppress(OSError):
            for command in Path(entry).iterdir():
                target = directory / command.name
                if command.name in hidden or target.exists() or target.is_symlink():
                    continue  # hidden, or shadowed by an earlier PATH entry, as the shell would
                if command.is_file() and os.access(command, os.X_OK):
                    target.symlink_to(command)
    return str(directory)


@dataclass
class Background:
    block: RunBlock
    process: subprocess.Popen[bytes]
    log: Path
    seen: set[int] = field(default_factory=set)

    def remember_descendants(self) -> None:
        with suppress(psutil.NoSuchProcess):
            self.seen.update(child.pid for child in psutil.Process(self.process.pid).children(recursive=True))


@dataclass
class ChapterRun:
    """One chapter's blocks run in order, in one sandbox, with one set of bindings."""

    document: Path
    root: Path = REPO_ROOT
    #: Run the ``docker`` blocks too (phase 6's Docker job), in a copied sandbox with Docker on PATH.
    docker: bool = False
    #: Shown each command and its output as it runs (the command line's CI log), if given.
    echo: Callable[[str], None] | None = None
    blocks_run: int = 0
    commands_run: int = 0
    seconds: float = 0.0

    def __post_init__(self) -> None:
        documented = [*DOCUMENTED_PORTS, *(DOCKER_PORTS if self.docker else [])]
        self.bindings = Bindings(ports={port: str(free_port()) for port in dict.fromkeys(documented)})
        self.backgrounds: list[Background] = []

    @contextmanager
    def sandbox(self) -> Iterator[Path]:
        with tempfile.TemporaryDirectory(prefix="tasklab-docs-") as directory:
            self.directory = Path(directory)
            self.workdir = self.directory / "repo"
            self.workdir.mkdir()
            make_sandbox(self.root, self.workdir, copy=self.docker)
            self.state = self.directory / "shell-state"
            self.state.write_text(f"cd {shlex.quote(str(self.workdir))}\n")
            self.env = {k: v for k, v in os.environ.items() if k not in CLEARED_ENVIRONMENT}
            self.env["PORT"] = self.bindings.ports["8000"]
            if self.docker:
                # Compose publishes the stack on these ports (compose.yaml reads them).
                self.env.update({name: self.bindings.ports[port] for port, name in DOCKER_PORTS.items()})
            else:
                self.env["PATH"] = fresh_machine_path(self.env.get("PATH", os.defpath), self.directory / "bin")
            self.env["NO_COLOR"] = "1"
            # curl draws a progress meter when its output is not a terminal; in a reader's
            # terminal it draws none. The sandbox's curlrc makes the two the same.
            (self.directory / ".curlrc").write_text("--silent\n--show-error\n")
            self.env["CURL_HOME"] = str(self.directory)
            try:
                yield self.workdir
            finally:
                self.stop_backgrounds()

    def script(self, command: str, *, save_state: bool, name: str) -> list[str]:
        """``command`` in the chapter's terminal: its variables and directory before, and after.

        The command goes in a file, not on bash's command line: in a reader's terminal no process
        shows the command's text, so ``pkill -f PATTERN`` must not find (and kill) the shell that
        runs it here either.
        """
        state = shlex.quote(str(self.state))
        if not save_state:
            text = f". {state}\n{command}\n"
        else:
            text = f'. {state}\n{command}\n__status=$?\n{{ export -p; printf "cd %q\\n" "$PWD"; }} > {state}\nexit $__status\n'
        path = self.directory / f"{name}.sh"
        path.write_text(text)
        return ["bash", str(path)]

    def run(self) -> None:
        started = time.monotonic()
        try:
            with self.sandbox():
                for block in scan(self.document):
                    if block.docker and not self.docker:
                        continue
                    if block.background:
                        self.start_background(block)
                    else:
                        self.run_block(block)
                    self.blocks_run += 1
        finally:
            self.seconds = time.monotonic() - started

    def run_command(self, block: RunBlock, command: Command) -> tuple[int, str]:
        text = self.bindings.command(command.text)
        try:
            done = subprocess.run(
                self.script(text, save_state=True, name="command"),
                env=self.env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                timeout=block.timeout,
                start_new_session=True,
            )
        except subprocess.TimeoutExpired as exc:
            raise BlockFailed(f"{block.where}: `{text}` did not finish within {block.timeout:.0f} s") from exc
        output = done.stdout.decode(errors="replace")
        if self.echo is not None:
            self.echo(f"{block.where}$ {text}\n{output.rstrip()}\n(exit status {done.returncode})")
        return done.returncode, output

    def run_block(self, block: RunBlock) -> None:
        deadline = time.monotonic() + block.timeout
        while True:
            failure = None
            for command in block.commands:
                status, output = self.run_command(block, command)
                self.commands_run += 1
                if status != block.exit_status:
                    failure = f"`{command.text}` exited with {status}, not {block.exit_status}; its output:\n{output[-3000:]}"
                    break
                mismatch = match_output(command.expected, output, self.bindings)
                if mismatch is not None:
                    failure = f"`{command.text}`: {mismatch}\nits output:\n{output[-3000:]}"
                    break
            if failure is None:
                return
            if not block.until or time.monotonic() > deadline:
                raise BlockFailed(f"{block.where}: {failure}")
            time.sleep(0.5)

    def start_background(self, block: RunBlock) -> None:
        [command] = block.commands
        text = self.bindings.command(command.text)
        log = self.directory / f"background-{block.line}.log"
        with log.open("wb") as sink:
            process = subprocess.Popen(
                self.script(text, save_state=False, name=f"background-{block.line}"),
                env=self.env,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        background = Background(block, process, log)
        self.backgrounds.append(background)
        self.commands_run += 1
        deadline = time.monotonic() + block.timeout
        ready_url = self.bindings.command(block.ready) if block.ready else None
        while True:
            background.remember_descendants()
            output = log.read_text(errors="replace")
            mismatch = match_output(command.expected, output, Bindings(dict(self.bindings.values), self.bindings.ports))
            if mismatch is None and (ready_url is None or _answers(ready_url)):
                match_output(command.expected, output, self.bindings)
                return
            if process.poll() is not None:
                raise BlockFailed(f"{block.where}: `{text}` exited with {process.returncode}; its output:\n{output[-3000:]}")
            if time.monotonic() > deadline:
                why = mismatch or f"{ready_url} never answered"
                raise BlockFailed(
                    f"{block.where}: `{text}` not ready within {block.timeout:.0f} s: {why}\nits output:\n{output[-3000:]}"
                )
            time.sleep(0.2)

    def stop_backgrounds(self) -> None:
        """Ctrl-C every background command, newest first, and check nothing it started survives."""
        leftovers: list[str] = []
        for background in reversed(self.backgrounds):
            background.remember_descendants()
            with suppress(ProcessLookupError):
                os.killpg(background.process.pid, signal.SIGINT)
            try:
                background.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                leftovers.append(f"{background.block.where}: `{background.block.commands[0].text}` ignored Ctrl-C")
            survivors = _wait_gone(background.seen | {background.process.pid}, STOP_TIMEOUT)
            for process in survivors:
                try:
                    command = " ".join(process.cmdline()[:4])
                except psutil.Error:  # it exited (or became a zombie) since we looked: not a survivor
                    continue
                leftovers.append(f"{background.block.where}: pid {process.pid} ({command}) outlived Ctrl-C")
                with suppress(psutil.Error):
                    process.kill()
        self.backgrounds.clear()
        if leftovers:
            raise BlockFailed("processes left behind:\n" + "\n".join(leftovers))


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).is_success
    except httpx.HTTPError:
        return False


def _wait_gone(pids: set[int], timeout: float) -> list[psutil.Process]:
    processes = []
    for pid in pids:
        with suppress(psutil.NoSuchProcess):
            processes.append(psutil.Process(pid))
    _, alive = psutil.wait_procs(processes, timeout=timeout)
    return [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


def chapters(root: Path = REPO_ROOT, *, docker: bool = False) -> list[Path]:
    """The documents with at least one block to run: without Docker, or (``docker``) with it."""
    return [path for path in sorted((root / "docs").glob("*.md")) if any(block.docker == docker for block in scan(path))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tasklab_cli.runblocks",
        description="Run the runnable blocks of the chapters, as tests/docs/test_runnable_blocks.py does.",
    )
    parser.add_argument("chapters", nargs="*", type=Path, help="documents to run (default: every chapter of the mode)")
    parser.add_argument("--docker", action="store_true", help="also run the blocks marked docker (needs a Docker engine)")
    args = parser.parse_args(argv)
    documents = args.chapters or chapters(docker=args.docker)
    failed = 0
    for document in documents:
        run = ChapterRun(document.resolve(), docker=args.docker, echo=lambda text: print(text, flush=True))
        try:
            run.run()
        except BlockFailed as exc:
            failed += 1
            print(f"FAILED {document.name}: {exc}", flush=True)
        else:
            print(f"ok {document.name}: {run.blocks_run} blocks, {run.commands_run} commands, {run.seconds:.1f} s", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
