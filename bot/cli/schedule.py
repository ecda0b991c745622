"""CLI group: schedule — patch windows, one-off runs and change freezes.

``windows`` reads the plans directory, the blackout calendar (PATCHGATE_BLACKOUT_CALENDAR)
and the active freezes. ``run``, ``freeze`` and ``unfreeze`` are operator decisions: requests
to ``patchgate serve``'s API with the person's token (``bot.cli.client``); the server
decides by its own PATCHGATE_OPERATORS, audits, and parses the times typed here with the
one parser (:mod:`workflows.timeparse`); a bad one is a single usage line and exit 1.
"""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import sqlalchemy as sa

from bot.backends import backend_catalog
from bot.cli.client import decide
from bot.cli.common import cli_clock, command, group, open_database, print_json, schema_hint
from bot.settings import Settings
from workflows import schedule as schedules
from workflows.db import Database, read_only
from workflows.errors import NotFound
from workflows.models import Freeze
from workflows.plans import PatchPlan, format_duration, load_plans
from workflows.schedule import Window


def register(sub: Any) -> None:
    """Add this group's subcommands."""
    commands = group(sub, "schedule", "Patch windows, one-off runs and change freezes.")

    p = command(
        commands,
        "windows",
        windows,
        "List the next windows of each scheduled plan (in the plan's zone and UTC), "
        "marking blacked-out and frozen ones.",
        json_flag=True,
    )
    p.add_argument("plan", nargs="?", metavar="PLAN", help="only this plan")
    p.add_argument("--count", type=int, default=5, help="how many windows (default 5)")

    p = command(
        commands,
        "run",
        run,
        "Schedule a single rollout of a plan at a time (operators only).",
        json_flag=True,
    )
    p.add_argument("plan", metavar="PLAN", help="the plan's name (its `name:` field)")
    p.add_argument(
        "--at",
        required=True,
        metavar="TIME",
        help='e.g. "2026-12-06 02:00 Europe/Berlin", "2026-12-06T01:00Z", "02:00" or "in 2h" '
        "(no zone: PATCHGATE_TIMEZONE)",
    )

    p = command(
        commands,
        "freeze",
        freeze,
        "Start a global change freeze at once: running rollouts hold at their next batch "
        "boundary and no new ones start (operators only).",
        json_flag=True,
    )
    p.add_argument("--until", metavar="TIME", help="when the freeze ends by itself")
    p.add_argument("reason", nargs="+", metavar="REASON", help="why (recorded and posted)")

    command(
        commands,
        "unfreeze",
        unfreeze,
        "Lift the change freeze at once (operators only).",
        json_flag=True,
    )


# --- helpers -----------------------------------------------------------------------------


_clock = cli_clock


def _plans(settings: Settings, name: str | None) -> dict[str, PatchPlan]:
    plans = {
        n: loaded.plan
        for n, loaded in load_plans(settings.checked_plans_dir, backend_catalog(settings)).items()
    }
    if name is None:
        return plans
    if name not in plans:
        known = ", ".join(sorted(plans)) or "none"
        raise NotFound(f"no plan named {name!r} in {settings.plans_dir} (plans: {known})")
    return {name: plans[name]}


@asynccontextmanager
async def _database(settings: Settings) -> AsyncIterator[Database]:
    db = open_database(settings)
    try:
        with schema_hint():
            yield db
    finally:
        await db.dispose()


async def _active_freezes(db: Database, now: dt.datetime) -> list[Freeze]:
    async with read_only(db) as session:
        return list(
            await session.scalars(
                sa.select(Freeze)
                .where(
                    Freeze.lifted_at.is_(None),
                    sa.or_(Freeze.until.is_(None), Freeze.until > now),
                )
                .order_by(Freeze.id)
            )
        )


def _iso(value: dt.datetime | None) -> str | None:
    return value.astimezone(dt.UTC).isoformat() if value is not None else None


# --- windows -----------------------------------------------------------------------------


def _window_json(window: Window) -> dict[str, Any]:
    local_start, local_end = window.local()
    blocked = window.blocked_by
    return {
        "start": _iso(window.start),
        "end": _iso(window.end),
        "start_local": local_start.isoformat(),
        "end_local": local_end.isoformat(),
        "blocked": blocked is not None,
        "blocked_by": (
            {"kind": blocked.kind, "reason": blocked.reason} if blocked is not None else None
        ),
    }


async def windows(args: argparse.Namespace, settings: Settings) -> int:
    plans = _plans(settings, args.plan)
    now = _clock(settings).now()
    async with _database(settings) as db:
        frozen = await _active_freezes(db, now)
    out: list[dict[str, Any]] = []
    lines: list[str] = []
    for name, plan in sorted(plans.items()):
        if plan.schedule is None:
            out.append({"plan": name, "schedule": None, "windows": []})
            lines.append(f"{name}: no schedule (rollouts start only when asked)")
            continue
        found = schedules.list_windows(
            plan,
            now=now,
            calendar=settings.blackout_calendar,
            freezes=frozen,
            count=args.count,
            default_zone=settings.timezone,
        )
        duration = format_duration(plan.schedule.duration)
        out.append(
            {
                "plan": name,
                "schedule": {
                    "cron": plan.schedule.cron,
                    "timezone": plan.schedule.timezone,
                    "duration": duration,
                },
                "windows": [_window_json(w) for w in found],
            }
        )
        lines.append(f"{name} ({plan.schedule.cron} {plan.schedule.timezone}, {duration}):")
        for window in found:
            mark = ""
            if window.blocked_by is not None:
                what = "FROZEN" if window.blocked_by.kind == "freeze" else "BLACKED OUT"
                mark = f"  {what} ({window.blocked_by.describe()})"
            elif window.is_open(now):
                mark = "  OPEN NOW"
            lines.append(f"  {window.describe()}{mark}")
        if not found:
            lines.append("  no window ahead")
    if args.json:
        print_json(out)
    else:
        print("\n".join(lines) if lines else f"no plans in {settings.plans_dir}")
    return 0


# --- run, freeze, unfreeze ------------------------------------------------------------------


async def run(args: argparse.Namespace, settings: Settings) -> int:
    return await decide(args, settings, "/schedule/runs", {"plan": args.plan, "at": args.at})


async def freeze(args: argparse.Namespace, settings: Settings) -> int:
    body = {"reason": " ".join(args.reason), "until": args.until}
    return await decide(args, settings, "/schedule/freeze", body)


async def unfreeze(args: argparse.Namespace, settings: Settings) -> int:
    return await decide(args, settings, "/schedule/unfreeze", {})
