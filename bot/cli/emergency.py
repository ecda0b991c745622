"""CLI: ``patchgate emergency CVE [--plan PLAN]`` (operators only).

A request to ``patchgate serve``'s API with the person's token (``bot.cli.client``). The
server finds the hosts affected by the CVE according to their latest stored assessment
and starts an expedited rollout of the plan restricted to them, shaped by the plan's
``emergency`` profile: the rings the profile does not skip, each narrowed to the
affected hosts, with the profile's batch and failure budget, its approvers and quorum
on approval gates, and only the packages that fix the CVE. It is an ordinary rollout
(flagged ``emergency``): same engine, same gates, same audit.
"""

from __future__ import annotations

import argparse
import re
from typing import Any

from bot.cli.client import decide
from bot.cli.common import command
from bot.settings import Settings
from workflows.errors import InputError

_CVE = re.compile(r"^CVE-\d{4}-\d{4,}$", re.IGNORECASE)


def register(sub: Any) -> None:
    p = command(
        sub, "emergency", run, "start an expedited rollout for one CVE (operators)", json_flag=True
    )
    p.add_argument("cve", metavar="CVE", help="e.g. CVE-2024-3094")
    p.add_argument("--plan", help="the plan whose emergency profile to use (default: the only one)")


async def run(args: argparse.Namespace, settings: Settings) -> int:
    if not _CVE.fullmatch(args.cve):
        raise InputError(f"{args.cve!r} is not a CVE id (CVE-YYYY-NNNN)")
    return await decide(args, settings, "/emergency", {"cve": args.cve, "plan": args.plan})
