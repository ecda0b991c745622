"""Text from people and the database is printed inert by the CLI (issue 15, item 6): a
reason holding terminal escape sequences (screen clear, colours, an OSC 8 link, a window
title), a carriage return that would overwrite the line, a bell and C1 controls prints
as its visible text only."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from bot.cli.common import terminal_safe
from tests.apikit import ThreadedApi
from tests.integration.test_cli_rollout import (  # noqa: F401 (fixtures)
    OPERATOR,
    as_user,
    cli,
    migrated,
    server,
)

HOSTILE = (
    "\x1b[2J\x1b[Hdisk full\x1b[31m!\x1b[0m \x1b]8;;https://evil.example\x07see runbook"
    "\x1b]8;;\x07\x1b]0;pwned\x07\rAPPROVED\x08\x07 \x9b31mred\x9b0m \x85end\ttab"
)
VISIBLE = "disk full! see runbookAPPROVED red end\ttab"
CONTROLS = {chr(c) for c in range(0x20) if chr(c) not in "\n\t"} | {
    chr(c) for c in range(0x7F, 0xA0)
}


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        (HOSTILE, VISIBLE),
        ("plain text\nsecond line\tcol", "plain text\nsecond line\tcol"),
        ("ünïcödé ✓ 中文", "ünïcödé ✓ 中文"),
        ("\x1b", ""),
        ("a\x1b[", "a"),
    ],
    ids=["hostile", "newlines and tabs stay", "unicode stays", "lone ESC", "cut sequence"],
)
def test_terminal_safe_keeps_the_visible_text_only(raw: str, shown: str) -> None:
    assert terminal_safe(raw) == shown


def test_rollout_show_and_list_print_a_hostile_reason_inert(
    migrated: Path,  # noqa: F811
    server: ThreadedApi,  # noqa: F811
) -> None:
    started = cli(migrated, "rollout", "start", "weekly", "--json", **as_user(server, OPERATOR))
    assert started.returncode == 0, started.stderr
    rollout_id = json.loads(started.stdout)["rollout_id"]
    with sqlite3.connect(migrated / "pg.db") as conn:
        conn.execute(
            "UPDATE rollouts SET reason = ?, hold_reason = ?, hold_by = 'U0X' WHERE id = ?",
            (HOSTILE, HOSTILE, rollout_id),
        )
    for args in (("rollout", "show", str(rollout_id)), ("rollout", "list")):
        result = cli(migrated, *args)
        assert result.returncode == 0, result.stderr
        assert not CONTROLS & set(result.stdout), repr(result.stdout)
        assert "disk full! see runbookAPPROVED" in result.stdout
    as_json = cli(migrated, "rollout", "show", str(rollout_id), "--json")
    assert json.loads(as_json.stdout)["reason"] == HOSTILE  # JSON escapes; unchanged
