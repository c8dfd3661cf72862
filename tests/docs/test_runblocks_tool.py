"""The runner of the chapters' shell blocks (``tasklab_cli.runblocks``), on small documents."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tasklab_cli import runblocks
from tasklab_cli.runblocks import Bindings, BlockFailed, ChapterRun, match_output

TASK_ID = "03c51ae1-26f2-4f49-b5b4-e4a32c9513c3"


def chapter(root: Path, body: str) -> Path:
    (root / "docs").mkdir(exist_ok=True)
    document = root / "docs" / "chapter.md"
    document.write_text(body)
    return document


def test_a_block_is_commands_with_continuations_and_their_output(tmp_path: Path) -> None:
    document = chapter(tmp_path, "<!-- run: until timeout=5 -->\n```console\n$ echo a \\\n  b\na b\n$ true\n```\n")

    [block] = runblocks.scan(document)

    assert block.until and block.timeout == 5
    assert [(c.text, c.expected) for c in block.commands] == [("echo a \\\n  b", ["a b"]), ("true", [])]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("<!-- run: sometimes -->\n```console\n$ true\n```\n", "unknown run option"),
        ("<!-- run -->\nText.\n", "must be followed by a fenced block"),
        ("<!-- run -->\n```console\noutput\n```\n", "output before the first command"),
        ("<!-- run: background -->\n```console\n$ true\n$ true\n```\n", "exactly one command"),
    ],
)
def test_a_malformed_block_is_an_error(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        runblocks.scan(chapter(tmp_path, body))


def test_volatile_values_match_by_shape_and_an_ellipsis_matches_anything() -> None:
    shown = ["date: Mon, 23 Nov 2026 12:39:11 GMT", f'12:36:14 {{"id":"{TASK_ID}","at":"2026-11-23T12:39:11.689811Z",…}}']
    actual = (
        "noise\ndate: Thu, 26 Nov 2026 03:14:36 GMT\r\nmore\n"
        '03:16:55 {"id":"d4b02ff1-8ed9-4b19-b014-f5642a4dfa36","at":"2026-11-26T03:14:36.5Z","x":1}\n'
    )
    bindings = Bindings()

    assert match_output(shown, actual, bindings) is None
    assert bindings.values == {TASK_ID: "d4b02ff1-8ed9-4b19-b014-f5642a4dfa36"}


def test_a_changed_value_or_a_missing_line_does_not_match() -> None:
    assert match_output(['{"result":55}'], '{"result":56}', Bindings()) is not None
    assert match_output(["first", "second"], "second\nfirst", Bindings()) is not None  # order matters
    assert match_output(["HTTP/1.1 202 Accepted"], "HTTP/1.1 200 OK", Bindings()) is not None


def test_a_bound_value_stands_for_the_run_value_in_later_commands_and_output() -> None:
    bindings = Bindings(ports={"8000": "45123"})
    assert (
        match_output([f"location: /tasks/{TASK_ID}"], "location: /tasks/d4b02ff1-8ed9-4b19-b014-f5642a4dfa36", bindings) is None
    )

    assert (
        bindings.command(f"curl http://127.0.0.1:8000/tasks/{TASK_ID}")
        == "curl http://127.0.0.1:45123/tasks/d4b02ff1-8ed9-4b19-b014-f5642a4dfa36"
    )
    # The same shown id must now be the same run id: another id is a mismatch.
    assert match_output([f'"id":"{TASK_ID}"'], '"id":"99999999-8ed9-4b19-b014-f5642a4dfa36"', bindings) is not None
    assert (
        match_output(
            [f'"id":"{TASK_ID}" on 127.0.0.1:8000'], '"id":"d4b02ff1-8ed9-4b19-b014-f5642a4dfa36" on 127.0.0.1:45123', bindings
        )
        is None
    )


def write_program(root: Path, greeting: str) -> None:
    (root / "hello.py").write_text(f"import sys\nprint({greeting!r}, sys.argv[1])\n")


def test_a_chapter_passes_and_fails_once_the_program_prints_something_else(tmp_path: Path) -> None:
    """What the chapters rely on: change what the code prints, and the chapter's run fails."""
    write_program(tmp_path, "hello")
    document = chapter(tmp_path, f"<!-- run -->\n```console\n$ {sys.executable} hello.py reader\nhello reader\n```\n")
    run = ChapterRun(document, root=tmp_path)
    run.run()
    assert (run.blocks_run, run.commands_run) == (1, 1)

    write_program(tmp_path, "goodbye")
    with pytest.raises(BlockFailed, match="shown line not in the output"):
        ChapterRun(document, root=tmp_path).run()


def test_a_failing_command_fails_unless_its_status_is_the_documented_one(tmp_path: Path) -> None:
    document = chapter(tmp_path, "<!-- run -->\n```console\n$ exit 3\n```\n")
    with pytest.raises(BlockFailed, match="exited with 3, not 0"):
        ChapterRun(document, root=tmp_path).run()

    chapter(tmp_path, "<!-- run: exit=3 -->\n```console\n$ exit 3\n```\n")
    ChapterRun(document, root=tmp_path).run()


def test_commands_of_a_chapter_share_variables_and_directory_but_not_the_checkout_state(tmp_path: Path) -> None:
    (tmp_path / ".tasklab").mkdir()
    document = chapter(
        tmp_path,
        "<!-- run -->\n```console\n$ export GREETING=hi && mkdir -p sub && cd sub\n"
        "$ echo $GREETING from $(basename $PWD)\nhi from sub\n"
        "$ test -e ../.tasklab || echo no state\nno state\n```\n",
    )

    ChapterRun(document, root=tmp_path).run()


def test_until_polls_until_the_output_appears_and_gives_up_at_its_timeout(tmp_path: Path) -> None:
    document = chapter(tmp_path, "<!-- run: until timeout=10 -->\n```console\n$ echo x >> count; wc -l < count\n3\n```\n")
    ChapterRun(document, root=tmp_path).run()

    chapter(tmp_path, "<!-- run: until timeout=1 -->\n```console\n$ echo never\nalways\n```\n")
    with pytest.raises(BlockFailed, match="always"):
        ChapterRun(document, root=tmp_path).run()


def test_a_background_server_is_waited_for_and_stopped_with_ctrl_c(tmp_path: Path) -> None:
    document = chapter(
        tmp_path,
        "<!-- run: background ready=http://127.0.0.1:8000/ -->\n"
        f"```console\n$ {sys.executable} -m http.server 8000 --bind 127.0.0.1\n```\n\n"
        "<!-- run -->\n```console\n$ curl -o /dev/null -w '%{http_code}\\n' http://127.0.0.1:8000/\n200\n```\n",
    )
    run = ChapterRun(document, root=tmp_path)

    run.run()

    assert run.blocks_run == 2


def test_a_process_that_outlives_ctrl_c_fails_the_chapter(tmp_path: Path) -> None:
    stubborn = tmp_path / "stubborn.py"
    stubborn.write_text(
        # Ignores Ctrl-C, then waits for a signal it does not ignore (the runner's SIGKILL).
        "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nprint('up', flush=True)\nsignal.pause()\n"
    )
    document = chapter(tmp_path, f"<!-- run: background -->\n```console\n$ {sys.executable} stubborn.py\nup\n```\n")
    runblocks.STOP_TIMEOUT, saved = 1.0, runblocks.STOP_TIMEOUT
    try:
        with pytest.raises(BlockFailed, match="processes left behind"):
            ChapterRun(document, root=tmp_path).run()
    finally:
        runblocks.STOP_TIMEOUT = saved


def test_the_sandbox_is_a_fresh_machine_without_redis_server_prometheus_chromium_or_docker(tmp_path: Path) -> None:
    """Chapters 1 to 5 promise nothing but Python (and a shell's usual tools): the runs check it."""
    hidden = " ".join(sorted(runblocks.FRESH_MACHINE_HIDES))
    # Exits 1 as soon as one hidden command is found, which fails the block.
    document = chapter(
        tmp_path,
        f"<!-- run -->\n```console\n$ for c in {hidden}; do if command -v $c; then exit 1; fi; done\n"
        "$ command -v sed bash >/dev/null && echo found\nfound\n```\n",
    )
    run = ChapterRun(document, root=tmp_path)
    run.run()

    assert run.commands_run == 2


def test_docker_blocks_run_only_in_docker_mode(tmp_path: Path) -> None:
    document = chapter(
        tmp_path,
        "<!-- run -->\n```console\n$ echo always\nalways\n```\n"
        "<!-- run docker -->\n```console\n$ echo with docker\nwith docker\n```\n",
    )
    without = ChapterRun(document, root=tmp_path)
    without.run()
    with_docker = ChapterRun(document, root=tmp_path, docker=True)
    with_docker.run()

    assert (without.blocks_run, with_docker.blocks_run) == (1, 2)
    assert runblocks.chapters(tmp_path) == runblocks.chapters(tmp_path, docker=True) == [document]


def test_a_docker_sandbox_is_a_copy_a_build_context_can_read(tmp_path: Path) -> None:
    (tmp_path / "code.txt").write_text("real file\n")
    document = chapter(tmp_path, "<!-- run docker -->\n```console\n$ test ! -L code.txt && cat code.txt\nreal file\n```\n")

    ChapterRun(document, root=tmp_path, docker=True).run()


def test_pkill_by_pattern_does_not_find_the_shell_that_runs_the_command(tmp_path: Path) -> None:
    """In a reader's terminal no process shows the typed command; chapters rely on it to kill by pattern."""
    command = "pkill -f 'tasklab-no-such-process-pattern'; echo the shell lives"
    document = chapter(tmp_path, f"<!-- run -->\n```console\n$ {command}\nthe shell lives\n```\n")

    ChapterRun(document, root=tmp_path).run()
