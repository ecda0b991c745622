"""CLI group: exception — grant, list and revoke time-boxed exceptions.

Granting and revoking need operator rights (PATCHGATE_OPERATORS), as the Slack user the
OS user is mapped to by PATCHGATE_CLI_IDENTITIES. Every exception gets a Jira ticket
(filed by the leader's outbox worker); ``list`` shows its key once Jira has answered.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from typing import Any
from zoneinfo import ZoneInfo

from bot.cli.common import (
    cli_actor,
    cli_clock,
    command,
    group,
    open_database,
    print_json,
    schema_hint,
)
from bot.settings import Settings
from workflows import exceptions
from workflows.db import read_only, unit_of_work
from workflows.errors import Forbidden, InputError, NotFound
from workflows.models import HostException
from workflows.plans import PatchPlan, load_plans
from workflows.timeparse import parse_time


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


_actor = cli_actor


def _now(settings: Settings) -> dt.datetime:
    return cli_clock(settings).now()


def parse_expiry(text: str, zone: str, *, now: dt.datetime) -> dt.datetime:
    """A date means the end of that day in ``zone``; anything else is a time as every
    time option reads it (``in 3 days``, ``3d``, ``2026-12-24 18:00``), in ``zone``."""
    tz = ZoneInfo(zone)
    if len(text.strip()) == 10:
        try:
            day = dt.date.fromisoformat(text.strip())
        except ValueError:
            pass
        else:
            return dt.datetime.combine(day, dt.time(23, 59, 59), tzinfo=tz)
    try:
        return parse_time(text, now=now, default_zone=zone)
    except InputError as exc:
        raise InputError(f"--expires: {exc}") from None


def _plan(settings: Settings, name: str | None) -> PatchPlan | None:
    if name is None:
        return None
    plans = load_plans(settings.checked_plans_dir)
    if name not in plans:
        raise NotFound(f"no plan named {name!r} in {settings.plans_dir}")
    return plans[name].plan


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
    actor = _actor(settings)
    plan = _plan(settings, args.plan)
    expires = parse_expiry(args.expires, settings.timezone, now=_now(settings))
    jira = plan.jira if plan else None
    max_days = (jira.max_exception_days if jira else None) or settings.exception_max_days
    channel = args.channel or (plan.slack.channel if plan and plan.slack else None)
    db = open_database(settings)
    try:
        with schema_hint():
            async with unit_of_work(db) as session:
                result = await exceptions.grant(
                    session,
                    actor=actor,
                    operators=settings.operator_ids,
                    host=args.host,
                    package=args.package,
                    cve=args.cve,
                    owner=args.owner,
                    reason=args.reason,
                    expires_at=expires,
                    now=_now(settings),
                    max_days=max_days,
                    project=jira.project if jira else None,
                    issue_type=jira.issue_type if jira else None,
                    channel=channel or settings.exceptions_channel,
                )
    finally:
        await db.dispose()
    if isinstance(result, Forbidden):
        raise result
    if args.json:
        print_json(_json(result))
    else:
        print(
            f"exception #{result.id} granted for {result.host_name}"
            + (f" package {result.package}" if result.package else "")
            + f" until {result.expires_at:%Y-%m-%d %H:%M} UTC; its Jira ticket is filed by "
            "the leader (patchgate serve)"
        )
    if not result.channel:
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
                rows = list(await exceptions.list_active(session, now=_now(settings)))
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
    actor = _actor(settings)
    db = open_database(settings)
    try:
        with schema_hint():
            async with unit_of_work(db) as session:
                result = await exceptions.revoke(
                    session,
                    exception_id=args.exception_id,
                    actor=actor,
                    operators=settings.operator_ids,
                    now=_now(settings),
                    reason=args.reason,
                )
    finally:
        await db.dispose()
    if isinstance(result, Forbidden):
        raise result
    print(f"exception #{result.id} revoked; {result.host_name} is patched again")
    return 0
