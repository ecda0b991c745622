"""CLI group: outbox — look at undelivered messages and tickets, and retry dead ones.

``patchgate outbox list [--state pending|delivered|dead]`` shows rows newest first;
``patchgate outbox retry ID`` makes a dead row pending again, with the rows that died
because it did (its children, theirs, ...), which follow it once it is delivered; the
leader's worker picks it up within its next pass. A row whose parent is dead is refused,
naming the parent to retry instead.
"""

from __future__ import annotations

import argparse
import datetime as dt
from typing import Any

from bot.cli.common import command, group, maintenance_actor, open_database, print_json, schema_hint
from bot.settings import Settings
from workflows import outbox
from workflows.audit import format_time
from workflows.db import read_only, unit_of_work, utcnow
from workflows.errors import InputError
from workflows.models import OutboxItem, OutboxState


def _now(settings: Settings) -> dt.datetime:
    """Now, or the test clock's time when PATCHGATE_TEST_CLOCK_FILE is set."""
    if settings.test_clock_file is None:
        return utcnow()
    text = settings.test_clock_file.read_text(encoding="utf-8").strip()
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise InputError(f"PATCHGATE_TEST_CLOCK_FILE: {text!r} is not an ISO timestamp") from exc
    return when if when.tzinfo is not None else when.replace(tzinfo=dt.UTC)


def _time(value: dt.datetime | None) -> str | None:
    return format_time(value) if value is not None else None


def _as_dict(item: OutboxItem) -> dict[str, Any]:
    return {
        "id": item.id,
        "key": item.key,
        "topic": item.topic,
        "state": item.state,
        "rollout_id": item.rollout_id,
        "parent_key": item.parent_key,
        "attempts": item.attempts,
        "next_attempt_at": _time(item.next_attempt_at),
        "lease_owner": item.lease_owner,
        "lease_until": _time(item.lease_until),
        "last_error": item.last_error,
        "result": item.result,
        "created_at": _time(item.created_at),
        "delivered_at": _time(item.delivered_at),
    }


def _line(item: OutboxItem) -> str:
    when = item.delivered_at if item.state == OutboxState.DELIVERED else item.next_attempt_at
    text = (
        f"{item.id:>6}  {item.state:<9}  {item.topic:<16}  {item.key}  "
        f"attempts={item.attempts}  {_time(when)}"
    )
    if item.last_error and item.state != OutboxState.DELIVERED:
        text += f"  error: {item.last_error.splitlines()[0][:200]}"
    return text


async def list_(args: argparse.Namespace, settings: Settings) -> int:
    db = open_database(settings)
    try:
        with schema_hint():
            async with read_only(db) as session:
                items = await outbox.list_items(session, state=args.state, limit=args.limit)
                totals = await outbox.counts(session)
    finally:
        await db.dispose()
    if args.json:
        print_json([_as_dict(item) for item in items])
        return 0
    summary = ", ".join(f"{n} {state}" for state, n in totals.items())
    if not items:
        print(f"no outbox rows{f' in state {args.state}' if args.state else ''} ({summary})")
        return 0
    print(f"{'id':>6}  {'state':<9}  {'topic':<16}  key")
    for item in items:
        print(_line(item))
    print(f"({summary})")
    return 0


async def retry(args: argparse.Namespace, settings: Settings) -> int:
    db = open_database(settings)
    at = _now(settings)
    try:
        with schema_hint():
            async with unit_of_work(db) as session:
                item = await outbox.retry(
                    session, item_id=args.id, at=at, actor=maintenance_actor()
                )
                done = _as_dict(item)
                waiting = [_as_dict(w) for w in await outbox.waiting_on(session, key=item.key)]
                done["waiting"] = [w["id"] for w in waiting]
    finally:
        await db.dispose()
    if args.json:
        print_json(done)
    else:
        after = (
            f", and {len(waiting)} row(s) waiting on it after it ("
            + ", ".join(str(w["id"]) for w in waiting)
            + ")"
            if waiting
            else ""
        )
        print(
            f"outbox row {done['id']} ({done['topic']} {done['key']}) is pending again{after}; "
            f"next attempt at {done['next_attempt_at']}"
        )
    return 0


def register(sub: Any) -> None:
    """Add this group's subcommands."""
    outbox_group = group(sub, "outbox", "Messages and tickets waiting to be delivered.")

    parser = command(outbox_group, "list", list_, "List outbox rows, newest first.", json_flag=True)
    parser.add_argument(
        "--state", choices=[s.value for s in OutboxState], help="only rows in this state"
    )
    parser.add_argument(
        "--limit", type=int, default=100, help="show at most this many rows (default: 100)"
    )

    parser = command(
        outbox_group, "retry", retry, "Make a dead outbox row pending again.", json_flag=True
    )
    parser.add_argument("id", type=int, help="the outbox row's id (see `patchgate outbox list`)")
