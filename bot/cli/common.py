"""Helpers shared by the CLI command groups."""

from __future__ import annotations

import argparse
import getpass
import json
import re
import sys
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TextIO

import sqlalchemy as sa

from workflows.errors import PatchGateError

if TYPE_CHECKING:  # imported where used: a command group loads only what it needs
    from bot.settings import Settings
    from workflows.db import Database, DatabaseURLs
    from workflows.ports import Clock

Handler = Callable[[argparse.Namespace, "Settings"], Coroutine[Any, Any, int]]


def command(
    sub: Any, name: str, handler: Handler, help_text: str, *, json_flag: bool = False
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(name, help=help_text, description=help_text)
    parser.set_defaults(handler=handler)
    if json_flag:
        parser.add_argument("--json", action="store_true", help="print JSON for machines")
    return parser


def group(sub: Any, name: str, help_text: str) -> Any:
    parser: argparse.ArgumentParser = sub.add_parser(name, help=help_text, description=help_text)
    return parser.add_subparsers(dest=f"{name}_command", metavar="SUBCOMMAND", required=True)


def print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, sort_keys=True, default=str)
    sys.stdout.write("\n")


def maintenance_actor() -> str:
    """Who ran a maintenance command (one that works on the database directly: tokens,
    plan reload, outbox retry, audit prune), for the audit log: ``admin:`` and the OS user
    as this process reports it. Whoever holds the database credentials is an administrator;
    the name is a label, not an identity anyone checked, and grants nothing."""
    return f"admin:{getpass.getuser()}"


# Terminal escape sequences (CSI, OSC up to BEL or ST, the other two-character ones, and
# the 8-bit CSI), then every control character but newline and tab: C0, DEL and C1.
_ESCAPES = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[ -~]|\x9b[0-?]*[ -/]*[@-~]"
)
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def terminal_safe(text: str) -> str:
    """``text`` without what a terminal would act on: escape sequences (colours, cursor
    moves, clearing the screen, OSC 8 links, window titles) and control characters
    (carriage return, backspace, bell, C1), so text from people or the database (a
    reason, a host's error) prints as text. Newlines and tabs stay."""
    return _CONTROLS.sub("", _ESCAPES.sub("", text))


class TerminalSafe:
    """A text stream that writes through :func:`terminal_safe` (``sys.stdout`` and
    ``sys.stderr`` of every CLI command but ``serve``: see :func:`terminal_safe_output`)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        self.stream.write(terminal_safe(text))
        return len(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


@contextmanager
def terminal_safe_output() -> Iterator[None]:
    """Everything a command prints, to stdout and stderr, made safe for a terminal (one
    place: CLI modules print as they like). JSON output is unchanged: ``json`` escapes
    control characters itself."""
    out, err = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = TerminalSafe(out), TerminalSafe(err)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = out, err


_MISSING_TABLE = ("no such table", "does not exist", "undefinedtable")


@contextmanager
def schema_hint() -> Iterator[None]:
    """Turn "table missing" database errors into one line saying to run the migrations."""
    try:
        yield
    except (sa.exc.OperationalError, sa.exc.ProgrammingError) as exc:
        text = str(exc.orig).lower()
        if any(marker in text for marker in _MISSING_TABLE):
            raise PatchGateError(
                f"the database has no PatchGate schema ({str(exc.orig).splitlines()[0]}); "
                "run `patchgate db upgrade` first"
            ) from exc
        raise


def existing_database(settings: Settings) -> DatabaseURLs:
    """The database URLs, refusing a SQLite file that does not exist with one line
    (connecting to it would leave an empty database file behind)."""
    from pathlib import Path

    path = settings.database.sqlite_path
    if path is not None and not Path(path).exists():
        raise PatchGateError(
            f"the database {path} does not exist (PATCHGATE_DATABASE_URL); "
            "run `patchgate db upgrade` first"
        )
    return settings.database


def open_database(settings: Settings) -> Database:
    """The database a command reads or writes (see :func:`existing_database`)."""
    from workflows.db import create_database

    return create_database(existing_database(settings))


def cli_clock(settings: Settings) -> Clock:
    """The real clock, or the test clock when PATCHGATE_TEST_CLOCK_FILE is set."""
    from workflows.clock import FileClock, SystemClock

    return FileClock(settings.test_clock_file) if settings.test_clock_file else SystemClock()
