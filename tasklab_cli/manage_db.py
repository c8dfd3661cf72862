"""``python -m tasklab_cli.manage_db show N | clear N | init``: look after the task store by hand.

* ``show N``: the N newest tasks as a table.
* ``clear N``: delete the N oldest *finished* tasks (completed, failed or cancelled). A task
  that is pending, running or retrying is never deleted: a worker may be about to write to it.
* ``init``: create the table and its indexes if they are missing, and the ``/stats`` aggregates of phases
  4 to 6 (filled from the table once, with a progress bar, when it holds tasks); safe to run again.

It works on the store ``DATABASE_URL`` names (SQLite or PostgreSQL, the default is in
``shared/settings.py``), or the one ``--database-url`` names.

Exit codes: 0 done, 1 the database could not be used (unreachable, or no table yet),
2 bad arguments (nothing is touched).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import delete, func, inspect
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, OperationalError
from sqlmodel import Session, col, select

from phase5_scaling.db import create_db_engine, init_db, is_sqlite, normalize_url
from phase5_scaling.monitoring import aggregates
from phase5_scaling.transitions import TERMINAL_STATUSES
from shared.models import Task, TaskStatus
from shared.settings import load_settings

PROG = "python -m tasklab_cli.manage_db"

#: ``show`` prints a table in a terminal: past a few thousand rows, ``GET /tasks`` or SQL serve better.
MAX_SHOW = 10_000
#: ``clear`` takes any count a task table really holds, and refuses numbers that would overflow
#: the database's integers (PostgreSQL's ``LIMIT`` is a 64-bit ``bigint``; 10**30 is not).
MAX_CLEAR = 1_000_000_000

#: Statuses a task never leaves on its own: deleting such a row races with nothing.
#: (``failed`` → ``pending`` happens only when an operator requeues; the DELETE re-checks it.)
FINISHED: tuple[str, ...] = tuple(s.value for s in TaskStatus if s in TERMINAL_STATUSES)

#: Seconds to wait for a PostgreSQL server before calling it unreachable (libpq waits for ever).
CONNECT_TIMEOUT_SECONDS = 5
#: ``show`` truncates error texts to this many characters, so one task stays on one line.
ERROR_WIDTH = 40
#: Piped into a file or ``grep``, rich would assume 80 columns and wrap each row over several lines.
PIPE_WIDTH = 160

EXAMPLES = f"""\
examples:
  {PROG} init         create the task table and the /stats aggregates (what exists is kept)
  {PROG} show 20      the 20 newest tasks, newest first
  {PROG} clear 1000   delete the 1000 oldest completed, failed or cancelled tasks
  {PROG} --database-url postgresql://postgres@127.0.0.1:5432/tasklab show 5

Pending, running and retrying tasks are never deleted. The database is DATABASE_URL
(default sqlite:///./tasklab.db, see shared/settings.py) unless --database-url is given.

exit codes: 0 done · 1 database unreachable or not initialised · 2 bad arguments
"""


class UsageError(Exception):
    """Arguments or configuration we refuse before touching the database (exit code 2)."""


class StoreError(Exception):
    """The database cannot do what was asked: unreachable, or no table yet (exit code 1)."""


def positive_count(maximum: int) -> Callable[[str], int]:
    """An argparse ``type``: a whole number from 1 to ``maximum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:  # also "1.5", "ten" and numbers with thousands of digits
            raise argparse.ArgumentTypeError(f"expected a whole number of tasks, got {text!r}") from None
        if not 1 <= value <= maximum:
            raise argparse.ArgumentTypeError(f"expected a number from 1 to {maximum:,}, got {text}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    # --database-url is accepted before or after the command: `show 5 --database-url …` works too.
    database_option = argparse.ArgumentParser(add_help=False)
    database_option.add_argument(
        "--database-url",
        metavar="URL",
        default=argparse.SUPPRESS,
        help="SQLAlchemy URL of the task store (overrides DATABASE_URL)",
    )
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Inspect, trim and create the tasklab task store (SQLite or PostgreSQL).",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[database_option],
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    show = commands.add_parser("show", parents=[database_option], help="print the N newest tasks, newest first")
    show.add_argument("count", metavar="N", type=positive_count(MAX_SHOW), help=f"how many tasks (1 to {MAX_SHOW:,})")
    clear = commands.add_parser("clear", parents=[database_option], help="delete the N oldest finished tasks")
    clear.add_argument(
        "count", metavar="N", type=positive_count(MAX_CLEAR), help=f"how many finished tasks at most (1 to {MAX_CLEAR:,})"
    )
    commands.add_parser(
        "init",
        parents=[database_option],
        help="create the task table, its indexes and the /stats aggregates if missing",
    )
    return parser


def resolve_database_url(option: str | None) -> str:
    """The URL to use: ``--database-url``, else ``DATABASE_URL``, else the settings' default."""
    if option is None:
        try:
            option = load_settings().database_url
        except ValidationError as exc:
            raise UsageError(f"invalid environment: {exc.errors()[0]['msg']}") from None
    try:
        url = normalize_url(option)
        make_url(url).get_dialect()  # an unknown scheme or driver fails here, not halfway through
    except (ArgumentError, NoSuchModuleError, ValueError) as exc:
        raise UsageError(f"not a database URL we can use: {option!r} ({exc})") from None
    return url


def shown(url: str) -> str:
    """The URL as it may appear in a terminal or a log: without its password."""
    return make_url(url).render_as_string(hide_password=True)


def open_engine(url: str, *, must_exist: bool) -> Engine:
    """An engine for ``url``; with ``must_exist``, refuse to create an SQLite file by connecting."""
    parsed = make_url(url)
    if is_sqlite(url):
        path = parsed.database
        if must_exist and path and path != ":memory:" and not path.startswith("file:") and not Path(path).exists():
            raise StoreError(f"no SQLite database at {path}: create it with `{PROG} init`")
    elif "connect_timeout" not in parsed.query:
        url = parsed.update_query_dict({"connect_timeout": str(CONNECT_TIMEOUT_SECONDS)}).render_as_string(hide_password=False)
    return create_db_engine(url)


def require_task_table(engine: Engine) -> None:
    if not inspect(engine).has_table(Task.__tablename__):
        raise StoreError(f"no table {Task.__tablename__!r} in {shown(str(engine.url))}: create it with `{PROG} init`")


def newest_tasks(engine: Engine, count: int) -> tuple[list[Task], int]:
    """The ``count`` newest tasks, newest first, and how many tasks there are in all."""
    with Session(engine) as session:
        tasks = session.exec(select(Task).order_by(col(Task.created_at).desc(), col(Task.id).desc()).limit(count)).all()
        total = session.exec(select(func.count()).select_from(Task)).one()
    return list(tasks), total


def when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment else "—"


def one_line(text: str | None, width: int = ERROR_WIDTH) -> str:
    if not text:
        return ""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def task_table(tasks: Sequence[Task], total: int) -> Table:
    table = Table(title=f"the {len(tasks)} newest of {total} tasks (times in UTC)", title_justify="left")
    table.add_column("id", no_wrap=True)
    table.add_column("type", no_wrap=True)
    table.add_column("priority", justify="right")
    table.add_column("status", no_wrap=True)
    table.add_column("attempts", justify="right")
    table.add_column("created", no_wrap=True)
    table.add_column("ended", no_wrap=True)
    table.add_column("error", no_wrap=True, overflow="ellipsis")
    for task in tasks:
        table.add_row(
            str(task.id),
            str(task.task_type),
            str(task.priority),
            str(task.status),
            str(task.attempts),
            when(task.created_at),
            when(task.completed_at),
            one_line(task.error),
        )
    return table


def delete_oldest_finished(engine: Engine, count: int) -> tuple[int, int, int]:
    """Delete at most ``count`` finished tasks, oldest first; return (removed, finished left, unfinished left).

    One statement, so one transaction::

        DELETE FROM task
        WHERE id IN (SELECT id FROM task WHERE status IN (finished)
                     ORDER BY created_at, id LIMIT :count)
          AND status IN (finished)

    The second ``status IN`` is what keeps it safe while workers and operators run. On
    PostgreSQL, a row the subquery chose can be changed by another transaction before the
    DELETE locks it (an operator requeues a failed task to ``pending``); the DELETE then
    re-evaluates its WHERE on the row's new version and leaves it alone. On SQLite the
    statement holds the write lock from start to end, so nothing changes under it.
    """
    finished = col(Task.status).in_(FINISHED)
    oldest = select(Task.id).where(finished).order_by(col(Task.created_at), col(Task.id)).limit(count)
    with engine.begin() as connection:
        removed = connection.execute(delete(Task).where(col(Task.id).in_(oldest), finished)).rowcount
        finished_left = connection.execute(select(func.count()).select_from(Task).where(finished)).scalar_one()
        unfinished_left = connection.execute(select(func.count()).select_from(Task).where(~finished)).scalar_one()
    return removed, finished_left, unfinished_left


def plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def show_command(url: str, count: int, console: Console) -> None:
    engine = open_engine(url, must_exist=True)
    try:
        require_task_table(engine)
        tasks, total = newest_tasks(engine, count)
    finally:
        engine.dispose()
    if not tasks:
        console.print(f"no tasks in {shown(url)}")
        return
    console.print(task_table(tasks, total))


def clear_command(url: str, count: int, console: Console) -> None:
    engine = open_engine(url, must_exist=True)
    try:
        require_task_table(engine)
        removed, finished_left, unfinished_left = delete_oldest_finished(engine, count)
    finally:
        engine.dispose()
    short = f"; asked for {count:,}, no more were finished" if removed < count else ""
    console.print(
        f"removed {plural(removed, 'finished task')} (oldest first{short}); "
        f"{finished_left:,} finished and {unfinished_left:,} unfinished kept",
        highlight=False,
    )


def init_command(url: str, console: Console) -> None:
    """The task table, then the /stats aggregates of phases 4 to 6, filled from the table when it has rows."""
    engine = open_engine(url, must_exist=False)
    try:
        existed = inspect(engine).has_table(Task.__tablename__)
        init_db(engine)
        with Progress(
            TextColumn("building the /stats aggregates from the table"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as progress:
            bar = progress.add_task("rows", total=None)
            built = aggregates.install(engine, lambda done, total: progress.update(bar, completed=done, total=total))
    finally:
        engine.dispose()
    if existed:
        console.print(f"table {Task.__tablename__!r} already exists in {shown(url)}", highlight=False)
    else:
        console.print(f"created table {Task.__tablename__!r} and its indexes in {shown(url)}", highlight=False)
    if built:
        console.print("built the /stats aggregates and their triggers (phases 4 to 6)", highlight=False)
    else:
        console.print("the /stats aggregates were in place: nothing to do", highlight=False)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # bad arguments: usage on stderr, exit 2
    try:
        url = resolve_database_url(getattr(args, "database_url", None))
    except UsageError as exc:
        parser.error(str(exc))

    console = Console() if sys.stdout.isatty() else Console(width=PIPE_WIDTH)
    errors = Console(stderr=True, highlight=False)
    try:
        if args.command == "show":
            show_command(url, args.count, console)
        elif args.command == "clear":
            clear_command(url, args.count, console)
        else:
            init_command(url, console)
    except StoreError as exc:
        errors.print(f"error: {exc}", markup=False, soft_wrap=True)
        return 1
    except DBAPIError as exc:
        # One line, no traceback: psycopg's messages span lines, and the URL's password stays hidden.
        problem = "cannot use the database" if isinstance(exc, OperationalError) else "database error"
        errors.print(f"error: {problem} at {shown(url)}: {one_line(str(exc.orig), 300)}", markup=False, soft_wrap=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
