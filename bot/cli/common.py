"""Helpers shared by the CLI command groups."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from bot.settings import Settings

Handler = Callable[[argparse.Namespace, Settings], Coroutine[Any, Any, int]]


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


def os_user() -> str:
    return getpass.getuser()


def cli_identity(settings: Settings) -> str | None:
    """The Slack user ID the OS user running this command is mapped to, if any."""
    return settings.identity_map.get(os_user())
