"""CLI group: token — personal tokens for ``patchgate serve``'s decisions API.

Maintenance commands: they work on the database directly, so they need its credentials
(PATCHGATE_DATABASE_URL), and whoever holds those is an administrator. ``create`` prints
the token once (only its SHA-256 is stored); a person then decides from a terminal with
PATCHGATE_SERVER_URL and PATCHGATE_TOKEN. Creating and revoking are audited
(``token.created``, ``token.revoked``), with the token's public id, never its secret.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
from typing import Any
from zoneinfo import ZoneInfo

from bot.cli.common import (
    cli_clock,
    command,
    group,
    maintenance_actor,
    open_database,
    print_json,
    schema_hint,
)
from bot.settings import Settings
from workflows import tokens
from workflows.db import read_only, unit_of_work
from workflows.errors import InputError
from workflows.models import ApiToken

_DAYS = re.compile(r"^([1-9][0-9]{0,3})d$")


def register(sub: Any) -> None:
    commands = group(sub, "token", "personal tokens for decisions through patchgate serve")

    p = command(
        commands,
        "create",
        create,
        "issue a token acting as a Slack user; it is printed once (administrators)",
        json_flag=True,
    )
    p.add_argument("--user", required=True, help="the Slack user ID it acts as (U… or W…)")
    p.add_argument(
        "--expires",
        default=f"{tokens.DEFAULT_LIFETIME.days}d",
        help=f"Nd (days from now) or a date, YYYY-MM-DD (end of that day in "
        f"PATCHGATE_TIMEZONE); default {tokens.DEFAULT_LIFETIME.days}d, at most "
        f"{tokens.MAX_LIFETIME.days} days",
    )
    p.add_argument("--label", help="what it is for (shown by `token list`)")

    command(commands, "list", list_tokens, "list tokens (never their secrets)", json_flag=True)

    p = command(commands, "revoke", revoke, "revoke a token at once", json_flag=True)
    p.add_argument("token_id", metavar="ID", help="the token's id, as `token list` shows it")


def parse_expires(text: str, *, now: dt.datetime, zone: str) -> dt.datetime:
    if match := _DAYS.fullmatch(text.strip()):
        return now + dt.timedelta(days=int(match.group(1)))
    try:
        day = dt.date.fromisoformat(text.strip())
    except ValueError:
        raise InputError(
            f"--expires {text!r} is not Nd (e.g. 90d) or a date (YYYY-MM-DD)"
        ) from None
    return dt.datetime.combine(day, dt.time(23, 59, 59), tzinfo=ZoneInfo(zone))


def _iso(value: dt.datetime | None) -> str | None:
    return value.astimezone(dt.UTC).isoformat() if value is not None else None


def _json(row: ApiToken, *, now: dt.datetime) -> dict[str, Any]:
    return {
        "id": row.public_id,
        "user": row.user_id,
        "label": row.label,
        "state": tokens.token_state(row, now=now),
        "created_at": _iso(row.created_at),
        "created_by": row.created_by,
        "expires_at": _iso(row.expires_at),
        "last_used_at": _iso(row.last_used_at),
        "revoked_at": _iso(row.revoked_at),
        "revoked_by": row.revoked_by,
    }


def _when(value: dt.datetime | None) -> str:
    return "-" if value is None else f"{value.astimezone(dt.UTC):%Y-%m-%d %H:%M}Z"


async def create(args: argparse.Namespace, settings: Settings) -> int:
    now = cli_clock(settings).now()
    expires = parse_expires(args.expires, now=now, zone=settings.timezone)
    db = open_database(settings)
    try:
        with schema_hint():
            async with unit_of_work(db) as session:
                issued = await tokens.issue(
                    session,
                    user_id=args.user,
                    expires_at=expires,
                    label=args.label,
                    created_by=maintenance_actor(),
                    now=now,
                )
                data = _json(issued.row, now=now)
    finally:
        await db.dispose()
    if args.json:
        print_json({**data, "token": issued.token})
    else:
        print(issued.token)
        print(
            f"token {data['id']} for {args.user}, expires {_when(expires)}. It is shown only "
            "this once: give it to its owner (PATCHGATE_TOKEN) and keep no copy."
        )
    return 0


async def list_tokens(args: argparse.Namespace, settings: Settings) -> int:
    now = cli_clock(settings).now()
    db = open_database(settings)
    try:
        with schema_hint():
            async with read_only(db) as session:
                rows = [_json(row, now=now) for row in await tokens.list_tokens(session)]
    finally:
        await db.dispose()
    if args.json:
        print_json(rows)
        return 0
    if not rows:
        print("no tokens")
    for row in rows:
        print(
            f"{row['id']}  {row['user']:<12} {row['state']:<8} "
            f"created {row['created_at'][:16]}Z  expires {row['expires_at'][:16]}Z  "
            f"last used {(row['last_used_at'] or '-')[:16]}  {row['label'] or ''}".rstrip()
        )
    return 0


async def revoke(args: argparse.Namespace, settings: Settings) -> int:
    now = cli_clock(settings).now()
    db = open_database(settings)
    try:
        with schema_hint():
            async with unit_of_work(db) as session:
                row = await tokens.revoke(
                    session, public_id=args.token_id, by=maintenance_actor(), now=now
                )
                data = _json(row, now=now)
    finally:
        await db.dispose()
    if args.json:
        print_json(data)
    else:
        print(f"token {data['id']} of {data['user']} revoked; it is refused from now on")
    return 0
