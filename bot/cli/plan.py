"""CLI group: plan — check plan files, list the plans directory, show a ring layout.

``plan validate`` needs no database and no Slack settings: it is meant for CI and
for pre-commit hooks in the repository that holds the plans.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from bot.backends import backend_catalog
from bot.cli.common import cli_clock, command, group, print_json
from bot.settings import Settings
from workflows.errors import NotFound, PlanError

_PLAN_SUFFIXES = (".yml", ".yaml")


def register(sub: Any) -> None:
    """Add this group's subcommands."""
    plan = group(sub, "plan", "Check and list patch plans.")

    validate = command(
        plan,
        "validate",
        _validate,
        "Check plan files (or directories of them); every error is printed with its line.",
    )
    validate.add_argument("paths", nargs="+", type=Path, metavar="FILE")

    command(plan, "list", _list, "List the plans in PATCHGATE_PLANS_DIR.", json_flag=True)

    layout = command(
        plan,
        "layout",
        _layout,
        "Dry run: which inventory hosts each ring of a plan takes, batch by batch.",
        json_flag=True,
    )
    command(
        plan,
        "reload",
        _reload,
        "Ask the leader (patchgate serve) to re-read PATCHGATE_PLANS_DIR: changed schedules "
        "take effect at its next tick.",
        json_flag=True,
    )

    layout.add_argument("name", metavar="PLAN", help="the plan's name: field")
    layout.add_argument(
        "--except",
        dest="excepted",
        action="append",
        default=[],
        metavar="HOST",
        help="treat HOST as excepted (repeatable)",
    )


def _expand(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.iterdir() if p.suffix in _PLAN_SUFFIXES))
        else:
            files.append(path)
    return files


async def _validate(args: argparse.Namespace, settings: Settings) -> int:
    from workflows.plans import load_plan

    messages: list[str] = []
    files = _expand(args.paths)
    if not files:
        raise PlanError([f"{', '.join(map(str, args.paths))}: no plan files (*.yml, *.yaml)"])
    for path in files:
        try:
            plan = load_plan(path, backend_catalog(settings))
        except PlanError as exc:
            messages.extend(exc.messages)
            continue
        rings = len(plan.rings)
        print(f"{path}: ok (plan {plan.name}, {rings} ring{'s' if rings != 1 else ''})")
    if messages:
        raise PlanError(messages)
    return 0


async def _list(args: argparse.Namespace, settings: Settings) -> int:
    from workflows.plans import format_duration, load_plans

    plans = load_plans(settings.checked_plans_dir, backend_catalog(settings))
    rows: list[dict[str, Any]] = []
    table: list[tuple[str, ...]] = [("NAME", "FILE", "RINGS", "SCHEDULE", "HASH")]
    for name, loaded in sorted(plans.items()):
        schedule = loaded.plan.schedule
        rings = [ring.name for ring in loaded.plan.rings]
        when = "-"
        sched_json: dict[str, str] | None = None
        if schedule is not None:
            duration = format_duration(schedule.duration)
            when = f"{schedule.cron} {schedule.timezone} for {duration}"
            sched_json = {
                "cron": schedule.cron,
                "timezone": schedule.timezone,
                "duration": duration,
            }
        rows.append(
            {
                "name": name,
                "file": str(loaded.path),
                "rings": rings,
                "schedule": sched_json,
                "hash": loaded.hash,
            }
        )
        table.append((name, str(loaded.path), " > ".join(rings), when, loaded.hash[:12]))
    if args.json:
        print_json(rows)
        return 0
    if not rows:
        print(f"no plans in {settings.plans_dir}")
        return 0
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]) - 1)]
    for line in table:
        cells = [cell.ljust(width) for cell, width in zip(line, widths, strict=False)]
        print("  ".join([*cells, line[-1]]))
    return 0


async def _reload(args: argparse.Namespace, settings: Settings) -> int:
    from bot.cli.common import maintenance_actor, open_database, schema_hint
    from workflows.db import unit_of_work
    from workflows.plans import load_plans
    from workflows.schedule import request_reload

    load_plans(
        settings.checked_plans_dir, backend_catalog(settings)
    )  # a broken plans directory is refused here, with lines
    clock = cli_clock(settings)
    who = maintenance_actor()
    db = open_database(settings)
    try:
        with schema_hint():
            async with unit_of_work(db) as session:
                request = await request_reload(session, requested_by=who, now=clock.now())
    finally:
        await db.dispose()
    if args.json:
        print_json({"request_id": request.id, "state": request.state})
    else:
        print(
            f"reload request #{request.id} queued; the leader (patchgate serve) re-reads "
            f"{settings.plans_dir} at its next tick"
        )
    return 0


async def _layout(args: argparse.Namespace, settings: Settings) -> int:
    from bot.backends import read_inventory
    from workflows.engine import layout_rollout, render_layout
    from workflows.plans import load_plans

    plans = load_plans(settings.checked_plans_dir, backend_catalog(settings))
    if args.name not in plans:
        known = ", ".join(sorted(plans)) or "none"
        raise NotFound(f"no plan named {args.name!r} in {settings.plans_dir} (plans: {known})")
    hosts = await read_inventory(settings)
    layout = layout_rollout(plans[args.name].plan, hosts, excepted=set(args.excepted))
    if args.json:
        print_json(layout.to_json())
    else:
        print(render_layout(layout))
    return 0
