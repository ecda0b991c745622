"""Scheduling from Slack: ``freeze``, ``unfreeze``, ``windows``, ``reload``, and the
``run PLAN --at TIME`` one-off run (parsed by ``run`` in ``builtin``, done here).

They call the domain functions ``patchgate schedule`` and ``patchgate plan reload``
call (:mod:`workflows.schedule`), with every typed time through the one parser
(:mod:`workflows.timeparse`). Parsing stays pure: it picks which words are the time by
reading them against a fixed instant in UTC (only their syntax matters there); ``run``
reads them again against now and ``PATCHGATE_TIMEZONE``. A bad time is a usage error.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from bot.slack import texts
from bot.slack.commands.registry import (
    Invocation,
    Registry,
    Reply,
    Subcommand,
    UsageError,
    ephemeral,
)
from bot.slack.deps import SlackDeps
from workflows import schedule as schedules
from workflows.db import read_only, unit_of_work
from workflows.errors import Conflict, Forbidden, InputError, PlanError
from workflows.gates import has_power
from workflows.models import Freeze
from workflows.plans import format_duration
from workflows.timeparse import format_both, parse_time

REFERENCE = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)  # syntax checks only
LONGEST_TIME = 4  # words: "2026-12-06 02:00 Europe/Berlin", "in 1 hour 30m"
WINDOWS_SHOWN = 5


def reads_as_time(words: Sequence[str]) -> bool:
    try:
        parse_time(" ".join(words), now=REFERENCE, default_zone="UTC")
    except InputError:
        return False
    return True


def at_time(text: str, deps: SlackDeps, usage: str) -> dt.datetime:
    try:
        return parse_time(text, now=deps.clock.now(), default_zone=deps.settings.timezone)
    except InputError as exc:
        raise UsageError(str(exc), usage=usage) from None


# --- freeze ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class FreezeCommand:
    until: str | None
    reason: str


FREEZE_USAGE = "freeze [until TIME] REASON"


def parse_freeze(args: Sequence[str]) -> FreezeCommand:
    if args and args[0].lower() == "until":
        rest = list(args[1:])
        if not rest:
            raise UsageError(texts.TIME_MISSING_AFTER_UNTIL, usage=FREEZE_USAGE)
        if reads_as_time(rest):
            raise UsageError(texts.FREEZE_REASON_AFTER_TIME, usage=FREEZE_USAGE)
        for n in range(min(LONGEST_TIME, len(rest) - 1), 0, -1):
            if reads_as_time(rest[:n]):
                return FreezeCommand(" ".join(rest[:n]), " ".join(rest[n:]))
        try:
            parse_time(rest[0], now=REFERENCE)
        except InputError as exc:
            raise UsageError(str(exc), usage=FREEZE_USAGE) from None
        raise UsageError(texts.no_time_in(" ".join(rest)), usage=FREEZE_USAGE)
    if not args:
        raise UsageError(texts.FREEZE_NEEDS_REASON, usage=FREEZE_USAGE)
    return FreezeCommand(None, " ".join(args))


async def run_freeze(deps: SlackDeps, who: Invocation, cmd: FreezeCommand) -> Reply:
    until = at_time(cmd.until, deps, FREEZE_USAGE) if cmd.until else None
    actor = await deps.actor(who.user_id)
    try:
        async with unit_of_work(deps.db) as session:
            result = await schedules.freeze(
                session,
                actor=actor,
                operators=deps.operators,
                reason=cmd.reason,
                until=until,
                now=deps.clock.now(),
            )
            refused = isinstance(result, Forbidden)
    except InputError as exc:
        raise UsageError(str(exc), usage=FREEZE_USAGE) from None
    if refused:
        return ephemeral(texts.no_entry(result))
    assert isinstance(result, Freeze)
    end = texts.until(format_both(until, deps.settings.timezone)) if until else texts.UNTIL_LIFTED
    return ephemeral(texts.freeze_in_force(result.id, end, result.reason))


# --- unfreeze -------------------------------------------------------------------------------


def parse_unfreeze(args: Sequence[str]) -> None:
    if args:
        raise UsageError(texts.unexpected(" ".join(args)), usage="unfreeze")


async def run_unfreeze(deps: SlackDeps, who: Invocation, _: None) -> Reply:
    actor = await deps.actor(who.user_id)
    try:
        async with unit_of_work(deps.db) as session:
            result = await schedules.unfreeze(
                session, actor=actor, operators=deps.operators, now=deps.clock.now()
            )
            refused = isinstance(result, Forbidden)
    except Conflict as exc:
        return ephemeral(texts.no_entry(exc))
    if refused:
        return ephemeral(texts.no_entry(result))
    assert isinstance(result, list)
    lifted = ", ".join(f"#{row.id}" for row in result)
    return ephemeral(texts.freeze_lifted(lifted))


# --- windows --------------------------------------------------------------------------------


@dataclass(frozen=True)
class WindowsCommand:
    plan: str | None


WINDOWS_USAGE = "windows [PLAN]"


def parse_windows(args: Sequence[str]) -> WindowsCommand:
    if len(args) > 1:
        raise UsageError(f"unexpected {' '.join(args[1:])!r}", usage=WINDOWS_USAGE)
    return WindowsCommand(args[0] if args else None)


async def run_windows(deps: SlackDeps, who: Invocation, cmd: WindowsCommand) -> Reply:
    plans = {name: loaded.plan for name, loaded in (await asyncio.to_thread(deps.plans)).items()}
    if cmd.plan is not None:
        if cmd.plan not in plans:
            known = ", ".join(sorted(plans)) or texts.NONE
            return ephemeral(texts.no_plan(cmd.plan, known))
        plans = {cmd.plan: plans[cmd.plan]}
    now = deps.clock.now()
    async with read_only(deps.db) as session:
        frozen = list(
            await session.scalars(
                sa.select(Freeze)
                .where(
                    Freeze.lifted_at.is_(None),
                    sa.or_(Freeze.until.is_(None), Freeze.until > now),
                )
                .order_by(Freeze.id)
            )
        )
    lines = [texts.PATCH_WINDOWS]
    for name, plan in sorted(plans.items()):
        if plan.schedule is None:
            lines.append(texts.no_schedule(name))
            continue
        found = schedules.list_windows(
            plan,
            now=now,
            calendar=deps.settings.blackout_calendar,
            freezes=frozen,
            count=WINDOWS_SHOWN,
            default_zone=deps.settings.timezone,
        )
        duration = format_duration(plan.schedule.duration)
        lines.append(f"`{name}` ({plan.schedule.cron} {plan.schedule.timezone}, {duration}):")
        for window in found:
            mark = ""
            if window.blocked_by is not None:
                frozen_by = window.blocked_by.kind == "freeze"
                mark = texts.window_blocked(frozen_by, window.blocked_by.describe())
            elif window.is_open(now):
                mark = texts.OPEN_NOW
            lines.append(f"• {window.describe()}{mark}")
        if not found:
            lines.append(texts.NO_WINDOW_AHEAD)
    if len(lines) == 1:
        lines.append(texts.NO_PLANS_LOADED)
    return ephemeral("\n".join(lines))


# --- reload ---------------------------------------------------------------------------------


def parse_reload(args: Sequence[str]) -> None:
    if args:
        raise UsageError(texts.unexpected(" ".join(args)), usage="reload")


async def run_reload(deps: SlackDeps, who: Invocation, _: None) -> Reply:
    actor = await deps.actor(who.user_id)
    if not has_power(actor, deps.operators):
        return ephemeral(texts.no_entry(texts.not_an_operator(who.user_id)))
    try:
        plans = await asyncio.to_thread(
            deps.plans
        )  # a broken directory is refused here, as the CLI does
    except PlanError as exc:
        return ephemeral(texts.plans_do_not_load(exc))
    async with unit_of_work(deps.db) as session:
        request = await schedules.request_reload(
            session, requested_by=who.user_id, now=deps.clock.now()
        )
        request_id = request.id
    return ephemeral(texts.reload_queued(request_id, len(plans)))


# --- run PLAN --at TIME (parsed by builtin's ``run``) ------------------------------------------


async def run_at(deps: SlackDeps, who: Invocation, *, plan_name: str, at: str, usage: str) -> Reply:
    plans = await asyncio.to_thread(deps.plans)
    if plan_name not in plans:
        known = ", ".join(sorted(plans)) or texts.NONE
        return ephemeral(texts.no_plan(plan_name, known))
    plan = plans[plan_name].plan
    when = at_time(at, deps, usage)
    actor = await deps.actor(who.user_id)
    try:
        async with unit_of_work(deps.db) as session:
            result = await schedules.schedule_run(
                session,
                plan=plan,
                at=when,
                actor=actor,
                operators=deps.operators,
                now=deps.clock.now(),
            )
            refused = isinstance(result, Forbidden)
    except InputError as exc:
        raise UsageError(str(exc), usage=usage) from None
    except Conflict as exc:
        return ephemeral(texts.no_entry(exc))
    if refused:
        return ephemeral(texts.no_entry(result))
    assert not isinstance(result, Forbidden)
    zone = schedules.zone_of(plan) if plan.schedule else deps.settings.timezone
    end = result.window_end
    window_end = format_both(end, zone) if end is not None else None
    return ephemeral(texts.run_scheduled(plan.name, format_both(when, zone), window_end))


def register(registry: Registry) -> None:
    registry.add(
        Subcommand(
            "freeze",
            FREEZE_USAGE,
            "start a change freeze: rollouts hold, no window opens (operators)",
            parse_freeze,
            run_freeze,
        )
    )
    registry.add(
        Subcommand(
            "unfreeze",
            "unfreeze",
            "lift the change freeze (operators)",
            parse_unfreeze,
            run_unfreeze,
        )
    )
    registry.add(
        Subcommand(
            "windows",
            WINDOWS_USAGE,
            "the next patch windows, frozen and blacked-out ones marked",
            parse_windows,
            run_windows,
        )
    )
    registry.add(
        Subcommand(
            "reload",
            "reload",
            "ask the leader to re-read the plans directory (operators)",
            parse_reload,
            run_reload,
        )
    )
