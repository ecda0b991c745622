"""CLI group: console — try PatchGate's Slack conversation in a browser, without Slack.

``patchgate console`` runs ``patchgate serve`` (Slack HTTP mode) against a local Slack
stand-in and serves a page that shows the conversation (bot/console/). For trying and
demos: it refuses to start when real Slack tokens are set, and listens on 127.0.0.1.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from bot.cli.common import command
from bot.settings import Settings

HELP = "try PatchGate's Slack flow in a browser, with a local Slack stand-in (no Slack needed)"


async def console(args: argparse.Namespace, settings: Settings) -> int:
    from bot.console.run import Options, run_console

    options = Options(
        host=args.host,
        port=args.port,
        data_dir=args.data_dir,
        tour=args.tour,
        pace=args.pace,
        lab=args.lab,
    )
    return await run_console(options, settings)


def register(sub: Any) -> None:
    """Add this group's command."""
    parser = command(sub, "console", console, HELP)
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address the page listens on (default 127.0.0.1; anything else is reachable "
        "by others, who can then act as any console person)",
    )
    parser.add_argument("--port", type=int, default=8000, help="the page's port (default 8000)")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="keep the SQLite database and simulated hosts here (default: a temporary "
        "directory, removed at exit)",
    )
    parser.add_argument(
        "--tour",
        action="store_true",
        help="play a scripted rollout (approvals, a health failure, a rollback) to watch",
    )
    parser.add_argument(
        "--lab",
        type=Path,
        default=None,
        metavar="DIR",
        help="drive the SSH lab's real hosts, which `python -m tests.console.lab DIR` (run as "
        "root, from a clone) started and described in DIR (docs/console.md)",
    )
    parser.add_argument(
        "--pace", type=float, default=3.0, help="seconds between the tour's steps (default 3)"
    )
