"""CLI: ``patchgate emergency CVE [--plan PLAN]`` (operators only).

Finds the hosts affected by the CVE according to their latest stored assessment and
starts an expedited rollout of the plan restricted to them, shaped by the plan's
``emergency`` profile: the rings the profile does not skip, each narrowed to the
affected hosts, with the profile's batch and failure budget, its approvers and quorum
on approval gates, and only the packages that fix the CVE. It is an ordinary rollout
(flagged ``emergency``): same engine, same gates, same audit.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
from typing import Any

from bot.cli.common import (
    cli_clock,
    cli_identity,
    command,
    open_database,
    os_user,
    print_json,
    schema_hint,
)
from bot.settings import Settings
from workflows import assessment
from workflows.db import read_only, unit_of_work
from workflows.errors import Forbidden, InputError, NotFound
from workflows.gates import Actor
from workflows.plans import emergency_plan, load_plans
from workflows.requests import start_rollout

_CVE = re.compile(r"^CVE-\d{4}-\d{4,}$", re.IGNORECASE)


def register(sub: Any) -> None:
    p = command(
        sub, "emergency", run, "start an expedited rollout for one CVE (operators)", json_flag=True
    )
    p.add_argument("cve", metavar="CVE", help="e.g. CVE-2024-3094")
    p.add_argument("--plan", help="the plan whose emergency profile to use (default: the only one)")


async def run(args: argparse.Namespace, settings: Settings) -> int:
    cve = args.cve.upper()
    if not _CVE.fullmatch(cve):
        raise InputError(f"{args.cve!r} is not a CVE id (CVE-YYYY-NNNN)")
    user_id = cli_identity(settings)
    if user_id is None:
        raise Forbidden(
            f"OS user {os_user()!r} is not mapped to a Slack user in PATCHGATE_CLI_IDENTITIES"
        )
    plans = load_plans(settings.checked_plans_dir)
    if args.plan is None:
        candidates = [n for n, p in plans.items() if p.plan.emergency is not None]
        if len(candidates) != 1:
            raise InputError(
                "name the plan with --plan (plans with an emergency profile: "
                f"{', '.join(sorted(candidates)) or 'none'})"
            )
        args.plan = candidates[0]
    if args.plan not in plans:
        raise NotFound(f"no plan named {args.plan!r} in {settings.plans_dir}")
    plan = plans[args.plan].plan
    now = cli_clock(settings).now()
    db = open_database(settings)
    try:
        with schema_hint():
            async with read_only(db) as session:
                latest = await assessment.latest(session)
            affected = assessment.affected_by(latest, cve)
            max_age = dt.timedelta(hours=settings.facts_max_age_hours)
            stale = assessment.stale_hosts(latest, now=now, max_age=max_age)
            note = (
                f"Note: {len(stale)} host(s) were last assessed more than "
                f"{settings.facts_max_age_hours:g} h ago ({', '.join(stale[:10])}"
                f"{', …' if len(stale) > 10 else ''}); run `patchgate assess --refresh` for "
                "a current picture."
                if stale
                else ""
            )
            if not affected:
                message = f"No host is affected by {cve} according to the latest assessments."
                if args.json:
                    print_json({"cve": cve, "affected": [], "stale_assessments": stale})
                else:
                    print("\n".join(filter(None, [message, note])))
                return 0
            packages = sorted({f.package for fixes in affected.values() for f in fixes})
            narrowed = emergency_plan(plan, sorted(affected), packages)
            async with unit_of_work(db) as session:
                result = await start_rollout(
                    session,
                    plan=narrowed,
                    actor=Actor(user_id=user_id, source="cli"),
                    operators=settings.operator_ids,
                    now=now,
                    emergency=True,
                    cve=cve,
                )
            if isinstance(result, Forbidden):
                raise result
    finally:
        await db.dispose()
    if args.json:
        print_json(
            {
                "cve": cve,
                "rollout": result.id,
                "affected": sorted(affected),
                "packages": packages,
                "stale_assessments": stale,
            }
        )
    else:
        print(
            f"Emergency rollout #{result.id} of plan {plan.name} for {cve}: "
            f"{len(affected)} host(s) ({', '.join(sorted(affected))}), "
            f"packages {', '.join(packages)}."
        )
        if note:
            print(note)
    return 0
