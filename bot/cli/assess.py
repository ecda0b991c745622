"""CLI: ``patchgate assess [SELECTOR] [--refresh] [--plan PLAN] [--json]``.

Without ``--refresh`` it shows the stored assessments (per host, with the time
assessed) and the riskiest fixes ranked with their reasons. ``--refresh`` first asks
each host for its facts and upgradable packages (executor concurrency), matches them
against the offline feeds (PATCHGATE_ADVISORIES_OSV_DIR, PATCHGATE_ADVISORIES_KEV_FILE)
and stores the result. ``--plan`` adds what that plan's baseline selects and leaves
out, and why.
"""

from __future__ import annotations

import argparse
import datetime as dt
from typing import Any

from bot.backends import backend_catalog
from bot.cli.assess_baseline import baseline_of
from bot.cli.common import command, open_database, print_json, schema_hint
from bot.cli.inventory import clock, selected_hosts
from bot.gather import assess, executor_for, gather, record
from bot.settings import Settings
from workflows import assessment
from workflows.db import read_only, unit_of_work
from workflows.errors import NotFound
from workflows.plans import load_plans


def register(sub: Any) -> None:
    p = command(sub, "assess", run, "show (or --refresh) per-host risk assessments", json_flag=True)
    p.add_argument("selector", nargs="?", help="only these hosts")
    p.add_argument("--refresh", action="store_true", help="assess the hosts again now")
    p.add_argument("--plan", help="show what this plan's baseline selects and leaves out")
    p.add_argument("--top", type=int, default=20, help="how many ranked entries to show")


async def run(args: argparse.Namespace, settings: Settings) -> int:
    hosts = await selected_hosts(settings, args.selector)
    names = [h.name for h in hosts]
    plan = None
    if args.plan:  # checked before any host is asked anything
        plans = load_plans(settings.checked_plans_dir, backend_catalog(settings))
        if args.plan not in plans:
            raise NotFound(f"no plan named {args.plan!r} in {settings.plans_dir}")
        plan = plans[args.plan].plan
    db = open_database(settings)
    try:
        with schema_hint():
            if args.refresh:
                async with executor_for(settings, db) as executor:
                    results = await gather(
                        executor, hosts, concurrency=settings.ssh_concurrency, upgradable=True
                    )
                now = clock(settings).now()
                async with unit_of_work(db) as session:
                    await record(session, results, now=now)
                    await assess(session, settings, results, now=now)
            async with read_only(db) as session:
                stored = await assessment.latest(session, hosts=names)
    finally:
        await db.dispose()
    baseline = None
    if plan is not None:
        baseline = baseline_of(settings, plan.packages, names, stored)
    _print(args, names, stored, baseline)
    return 0


def _print(
    args: argparse.Namespace,
    names: list[str],
    stored: dict[str, tuple[dt.datetime, list[assessment.Finding]]],
    baseline: assessment.HostsBaseline | None,
) -> None:
    ranked = sorted(
        (f for _, items in stored.values() for f in items), key=lambda f: (-f.risk, f.host)
    )
    missing = [n for n in names if n not in stored]
    if args.json:
        data: dict[str, Any] = {
            "hosts": {
                host: {
                    "assessed_at": at.isoformat(),
                    "risk": max((f.risk for f in items), default=0),
                    "fixes": [f.to_json() for f in items],
                }
                for host, (at, items) in sorted(stored.items())
            },
            "not_assessed": missing,
            "top": [f.to_json() for f in ranked[: args.top]],
        }
        if baseline is not None:
            data["baseline"] = baseline.to_json()
        print_json(data)
        return
    for host, (at, items) in sorted(stored.items()):
        risk = max((f.risk for f in items), default=0)
        print(f"{host:<32} risk {risk:>3}  {len(items)} fix(es)  assessed {at:%Y-%m-%d %H:%M}")
    for name in missing:
        print(f"{name:<32} not assessed yet")
    if ranked:
        print("Top fixes:")
        for f in ranked[: args.top]:
            ids = ", ".join(f.cves or f.advisories) or "no advisory"
            print(
                f"  {f.risk:>3}  {f.host} {f.package} -> {f.candidate} ({ids}): "
                f"{'; '.join(f.reasons)}"
            )
    if baseline is not None:
        print("\n".join(assessment.render_baseline(baseline)))
