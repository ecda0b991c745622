"""Operator decisions through the API besides rollouts: one-off runs, change freezes,
exceptions and the emergency path. Operators are the server's PATCHGATE_OPERATORS (user
IDs, and user groups as Slack reports them); the domain audits every refusal.

Times are parsed by the server, with its clock and PATCHGATE_TIMEZONE, from the text the
person typed (``in 2h``, ``2026-12-06 02:00 Europe/Berlin``).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any
from zoneinfo import ZoneInfo

from bot.api._bodies import EmergencyBody, Empty, ExceptionBody, FreezeBody, RevokeBody, RunBody
from bot.api._http import Call
from workflows import assessment, exceptions
from workflows import schedule as schedules
from workflows.db import read_only, unit_of_work
from workflows.errors import Forbidden, InputError, NotFound
from workflows.gates import has_power
from workflows.models import HostException
from workflows.plans import PatchPlan, emergency_plan
from workflows.requests import refuse, start_rollout
from workflows.timeparse import format_both, parse_time

_CVE = re.compile(r"^CVE-\d{4}-\d{4,}$", re.IGNORECASE)


def _iso(value: dt.datetime | None) -> str | None:
    return value.astimezone(dt.UTC).isoformat() if value is not None else None


# --- schedule ------------------------------------------------------------------------------


async def run(call: Call, body: RunBody) -> dict[str, Any]:
    deps = call.deps
    plan = await deps.plan(body.plan)
    now = deps.clock.now()
    at = parse_time(body.at, now=now, default_zone=deps.settings.timezone)
    async with unit_of_work(deps.db) as session:
        result = await schedules.schedule_run(
            session, plan=plan, at=at, actor=call.actor, operators=deps.operators, now=now
        )
    if isinstance(result, Forbidden):
        raise result
    zone = schedules.zone_of(plan) if plan.schedule else deps.settings.timezone
    end = result.window_end
    until = f", window until {format_both(end, zone)}" if end is not None else ""
    return {
        "due_id": result.id,
        "plan": plan.name,
        "at": _iso(result.due_at),
        "window_end": _iso(result.window_end),
        "message": f"one-off run of plan {plan.name} scheduled for {format_both(at, zone)}"
        f"{until}; the leader (patchgate serve) starts it then as a new rollout (its number: "
        "`patchgate rollout list`)",
    }


async def freeze(call: Call, body: FreezeBody) -> dict[str, Any]:
    deps = call.deps
    now = deps.clock.now()
    zone = deps.settings.timezone
    until = parse_time(body.until, now=now, default_zone=zone) if body.until else None
    async with unit_of_work(deps.db) as session:
        result = await schedules.freeze(
            session,
            actor=call.actor,
            operators=deps.operators,
            reason=body.reason,
            until=until,
            now=now,
        )
    if isinstance(result, Forbidden):
        raise result
    end = f"until {format_both(until, zone)}" if until else "until lifted"
    return {
        "freeze_id": result.id,
        "reason": result.reason,
        "until": _iso(until),
        "message": f"change freeze #{result.id} in force {end}: {result.reason}. Running "
        "rollouts hold at their next batch boundary; no window opens",
    }


async def unfreeze(call: Call, body: Empty) -> dict[str, Any]:
    deps = call.deps
    async with unit_of_work(deps.db) as session:
        result = await schedules.unfreeze(
            session, actor=call.actor, operators=deps.operators, now=deps.clock.now()
        )
    if isinstance(result, Forbidden):
        raise result
    ids = [row.id for row in result]
    return {
        "lifted": ids,
        "message": f"change freeze lifted ({', '.join(f'#{i}' for i in ids)}); rollouts held "
        "by it continue at the leader's next tick",
    }


# --- exceptions ----------------------------------------------------------------------------


def parse_expiry(text: str, zone: str, *, now: dt.datetime) -> dt.datetime:
    """A date means the end of that day in ``zone``; anything else is a time as every
    time option reads it (``in 3 days``, ``3d``, ``2026-12-24 18:00``), in ``zone``."""
    if len(text.strip()) == 10:
        try:
            day = dt.date.fromisoformat(text.strip())
        except ValueError:
            pass
        else:
            return dt.datetime.combine(day, dt.time(23, 59, 59), tzinfo=ZoneInfo(zone))
    try:
        return parse_time(text, now=now, default_zone=zone)
    except InputError as exc:
        raise InputError(f"--expires: {exc}") from None


def exception_json(exc: HostException) -> dict[str, Any]:
    return {
        "id": exc.id,
        "host": exc.host_name,
        "package": exc.package,
        "cve": exc.cve,
        "owner": exc.owner,
        "reason": exc.reason,
        "expires_at": _iso(exc.expires_at),
        "ticket_key": exc.ticket_key,
        "created_by": exc.created_by,
        "channel": exc.channel,
    }


async def add_exception(call: Call, body: ExceptionBody) -> dict[str, Any]:
    deps = call.deps
    settings = deps.settings
    plan = await deps.plan(body.plan) if body.plan is not None else None
    expires = parse_expiry(body.expires, settings.timezone, now=deps.clock.now())
    jira = plan.jira if plan else None
    max_days = (jira.max_exception_days if jira else None) or settings.exception_max_days
    channel = body.channel or (plan.slack.channel if plan and plan.slack else None)
    async with unit_of_work(deps.db) as session:
        result = await exceptions.grant(
            session,
            actor=call.actor,
            operators=deps.operators,
            host=body.host,
            package=body.package,
            cve=body.cve,
            owner=body.owner,
            reason=body.reason,
            expires_at=expires,
            now=deps.clock.now(),
            max_days=max_days,
            project=jira.project if jira else None,
            issue_type=jira.issue_type if jira else None,
            channel=channel or settings.exceptions_channel,
        )
    if isinstance(result, Forbidden):
        raise result
    return {
        **exception_json(result),
        "message": f"exception #{result.id} granted for {result.host_name}"
        + (f" package {result.package}" if result.package else "")
        + f" until {result.expires_at:%Y-%m-%d %H:%M} UTC; its Jira ticket is filed by "
        "the leader (patchgate serve)",
    }


async def revoke_exception(call: Call, body: RevokeBody) -> dict[str, Any]:
    deps = call.deps
    exception_id = call.row_id("exception_id", "exception")
    async with unit_of_work(deps.db) as session:
        result = await exceptions.revoke(
            session,
            exception_id=exception_id,
            actor=call.actor,
            operators=deps.operators,
            now=deps.clock.now(),
            reason=body.reason,
        )
    if isinstance(result, Forbidden):
        raise result
    return {
        **exception_json(result),
        "message": f"exception #{result.id} revoked; {result.host_name} is patched again",
    }


# --- emergency -----------------------------------------------------------------------------


async def _emergency_plan(call: Call, name: str | None) -> PatchPlan:
    plans = await call.deps.plans()
    if name is None:
        candidates = [n for n, p in plans.items() if p.plan.emergency is not None]
        if len(candidates) != 1:
            raise InputError(
                "name the plan with --plan (plans with an emergency profile: "
                f"{', '.join(sorted(candidates)) or 'none'})"
            )
        name = candidates[0]
    if name not in plans:
        raise NotFound(f"no plan named {name!r} in {call.deps.settings.plans_dir}")
    return plans[name].plan


async def emergency(call: Call, body: EmergencyBody) -> dict[str, Any]:
    deps = call.deps
    cve = body.cve.upper()
    if not _CVE.fullmatch(cve):
        raise InputError(f"{body.cve!r} is not a CVE id (CVE-YYYY-NNNN)")
    now = deps.clock.now()
    if not has_power(call.actor, deps.operators):  # before anything is read
        async with unit_of_work(deps.db) as session:
            refusal = await refuse(
                session,
                actor=call.actor,
                action="emergency",
                now=now,
                why=f"{call.actor.user_id} is not an operator (PATCHGATE_OPERATORS)",
            )
        raise refusal
    plan = await _emergency_plan(call, body.plan)
    async with read_only(deps.db) as session:
        latest = await assessment.latest(session)
    affected = assessment.affected_by(latest, cve)
    hours = deps.settings.facts_max_age_hours
    stale = assessment.stale_hosts(latest, now=now, max_age=dt.timedelta(hours=hours))
    note = (
        f"Note: {len(stale)} host(s) were last assessed more than {hours:g} h ago "
        f"({', '.join(stale[:10])}{', …' if len(stale) > 10 else ''}); run "
        "`patchgate assess --refresh` for a current picture."
        if stale
        else ""
    )
    if not affected:
        message = f"No host is affected by {cve} according to the latest assessments."
        return {
            "cve": cve,
            "affected": [],
            "stale_assessments": stale,
            "message": "\n".join(filter(None, [message, note])),
        }
    packages = sorted({f.package for fixes in affected.values() for f in fixes})
    narrowed = emergency_plan(plan, sorted(affected), packages)
    async with unit_of_work(deps.db) as session:
        result = await start_rollout(
            session,
            plan=narrowed,
            actor=call.actor,
            operators=deps.operators,
            now=now,
            emergency=True,
            cve=cve,
        )
    if isinstance(result, Forbidden):
        raise result
    hosts = sorted(affected)
    message = (
        f"Emergency rollout #{result.id} of plan {plan.name} for {cve}: "
        f"{len(hosts)} host(s) ({', '.join(hosts)}), packages {', '.join(packages)}."
    )
    return {
        "cve": cve,
        "rollout": result.id,
        "affected": hosts,
        "packages": packages,
        "stale_assessments": stale,
        "message": "\n".join(filter(None, [message, note])),
    }
