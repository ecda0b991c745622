"""CLI group: exception — grant, list and revoke time-boxed exceptions.

Granting and revoking are operator decisions: requests to ``patchgate serve``'s API with
the person's token (``bot.cli.client``); the server checks its own PATCHGATE_OPERATORS.
Every exception gets a Jira ticket (filed by the leader's outbox worker); ``list`` reads
the database and shows its key once Jira has answered.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from bot.cli.client import call, decide
from bot.cli.common import cli_clock, command, group, open_database, print_json, schema_hint
from bot.settings import Settings
from workflows import exceptions
from workflows.db import read_only
from workflows.models import HostException


def register(sub: Any) -> None:
    commands = group(sub, "exception", "grant, list and revoke time-boxed exceptions")

    p = command(
        commands, "add", add, "leave a host (or one package on it) out until a date", json_flag=True
    )
    p.add_argument("host", help="the host name as the inventory gives it")
    p.add_argument("--package", help="only this package is left out (host scope otherwise)")
    p.add_argument(
        "--cve",
        help="the CVE the exception is about; without --package, the package fixing it on "
        "the host comes from its latest assessment (patchgate assess)",
    )
    p.add_argument("--owner", required=True, help="Slack user ID of the person accountable")
    p.add_argument("--reason", required=True, help="why (goes on the Jira ticket)")
    p.add_argument(
        "--expires",
        required=True,
        help="expiry: a date (end of that day in PATCHGATE_TIMEZONE), a time, or a "
        'relative time ("in 3 days", "3d")',
    )
    p.add_argument("--plan", help="take the maximum length and Jira project from this plan")
    p.add_argument("--channel", help="Slack channel ID where its lapse is announced")

    command(commands, "list", list_exceptions, "list active exceptions", json_flag=True)

    p = command(commands, "revoke", revoke, "end an exception now")
    p.add_argument("exception_id", type=int, metavar="ID")
    p.add_argument("--reason", help="recorded and put on the ticket")


def _json(exc: HostException) -> dict[str, Any]:
    return {
        "id": exc.id,
        "host": exc.host_name,
        "package": exc.package,
        "cve": exc.cve,
        "owner": exc.owner,
        "reason": exc.reason,
        "expires_at": exc.expires_at,
        "ticket_key": exc.ticket_key,
        "created_by": exc.created_by,
    }


async def add(args: argparse.Namespace, settings: Settings) -> int:
    body = {
        "host": args.host,
        "package": args.package,
        "cve": args.cve,
        "owner": args.owner,
        "reason": args.reason,
        "expires": args.expires,
        "plan": args.plan,
        "channel": args.channel,
    }
    answer = await call(settings, "POST", "/exceptions", body)
    message = answer.pop("message", "")
    if args.json:
        print_json(answer)
    else:
        print(message)
    if not answer.get("channel"):
        print(
            "note: no Slack channel for it (--channel, --plan or PATCHGATE_EXCEPTIONS_CHANNEL): "
            "its lapse will be on its ticket only",
            file=sys.stderr,
        )
    return 0


async def list_exceptions(args: argparse.Namespace, settings: Settings) -> int:
    db = open_database(settings)
    try:
        with schema_hint():
            async with read_only(db) as session:
                rows = list(await exceptions.list_active(session, now=cli_clock(settings).now()))
    finally:
        await db.dispose()
    if args.json:
        print_json([_json(r) for r in rows])
        return 0
    if not rows:
        print("no active exceptions")
    for r in rows:
        scope = r.host_name + (f" [{r.package}]" if r.package else "")
        scope += f" ({r.cve})" if r.cve else ""
        print(
            f"#{r.id:<4} {scope:<32} owner {r.owner:<12} until "
            f"{r.expires_at:%Y-%m-%d %H:%M}Z  ticket {r.ticket_key or '(pending)'}  {r.reason}"
        )
    return 0


async def revoke(args: argparse.Namespace, settings: Settings) -> int:
    path = f"/exceptions/{args.exception_id}/revoke"
    return await decide(args, settings, path, {"reason": args.reason})
