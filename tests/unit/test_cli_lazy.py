"""The CLI imports only the command group it runs (start-up time), and its listing of the
groups says what the groups themselves register."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli.main import GROUPS, build_parser

REPO = Path(__file__).resolve().parents[2]


def loaded_after(*argv: str) -> list[str]:
    code = (
        "import json, sys\n"
        "from bot.cli.main import main\n"
        "try:\n"
        f"    main({list(argv)!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=True,
    )
    modules: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    return modules


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, str]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {choice.dest: str(choice.help) for choice in action._choices_actions}


def test_the_group_listing_is_what_each_group_registers() -> None:
    eager = _subcommands(build_parser())  # every group imported and registered
    lazy = _subcommands(build_parser(["--help"]))  # none imported
    assert lazy == eager == {name: help_text for name, _, help_text in GROUPS}


def test_help_imports_no_command_group() -> None:
    modules = loaded_after("--help")
    assert [m for m in modules if m.startswith("bot.cli.")] == ["bot.cli.main"]
    assert "sqlalchemy" not in modules and "aiohttp" not in modules


@pytest.mark.parametrize("group", ["audit", "plan", "debug"])
def test_a_command_imports_only_its_own_group(group: str) -> None:
    modules = loaded_after(group, "--help")
    groups = {m for m in modules if m.startswith("bot.cli.")} - {"bot.cli.main", "bot.cli.common"}
    assert groups == {f"bot.cli.{group}"}
    assert "aiohttp" not in modules and "alembic" not in modules
