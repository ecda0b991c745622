"""CLI group: rollout — start, inspect and decide rollouts.

``list``, ``show`` and ``start --dry-run`` read the database and the plans. The decisions
(``start``, ``approve``, ``reject``, ``pause``, ``resume``, ``abort``) are requests to
``patchgate serve``'s API (PATCHGATE_SERVER_URL) with the person's token (PATCHGATE_TOKEN):
the server decides as the token's Slack user, by its own settings (``bot.api``).
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bot.backends import backend_catalog
from bot.cli.assess_baseline import baseline_of, engine_outlook, stored_assessments
from bot.cli.client import decide
from bot.cli.common import command, group, open_database, print_json, schema_hint
from bot.settings import Settings
from integrations.inventory import FileInventory
from workflows.assessment import HostsBaseline, patch_label, render_baseline
from workflows.db import Database, read_only
from workflows.engine import layout_rollout, render_layout
from workflows.errors import InputError, NotFound, PatchGateError
from workflows.hostos import os_label
from workflows.models import Gate, Host, HostRun, RequestKind, Ring, Rollout
from workflows.notify import texts
from workflows.plans import PatchPlan, load_plans


def register(sub: Any) -> None:
    commands = group(sub, "rollout", "start, inspect, approve, pause and abort rollouts")

    p = command(
        commands, "start", start, "start a rollout of a plan (or --dry-run it)", json_flag=True
    )
    p.add_argument("plan", help="the plan's name (its `name:` field)")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="print which hosts fall in which ring and batch; write nothing",
    )

    p = command(commands, "list", list_rollouts, "list rollouts, newest first", json_flag=True)
    p.add_argument("--state", help="only rollouts in this state")
    p.add_argument("--limit", type=int, default=20)

    p = command(commands, "show", show, "show one rollout: rings, gates, hosts", json_flag=True)
    p.add_argument("rollout_id", type=int, metavar="ID")

    p = command(
        commands,
        "approve",
        approve,
        "approve the open gate of a rollout, bound to the patch set you were shown",
    )
    p.add_argument("rollout_id", type=int, metavar="ID")
    p.add_argument(
        "--hash",
        required=True,
        dest="shown_hash",
        metavar="PREFIX",
        help="the patch-set hash shown by `rollout show` (8 characters or more)",
    )

    p = command(commands, "reject", reject, "reject the open gate of a rollout")
    p.add_argument("rollout_id", type=int, metavar="ID")
    p.add_argument("--reason", required=True, help="why (recorded and posted)")

    for name, help_text in (
        ("pause", "hold a rollout: no new batch starts"),
        ("resume", "lift a rollout's hold"),
        ("abort", "stop a rollout at the next batch boundary"),
    ):
        p = command(commands, name, control, help_text)
        p.add_argument("rollout_id", type=int, metavar="ID")
        p.add_argument("--reason", help="recorded and posted")
        p.set_defaults(kind=RequestKind(name))


def _plan(settings: Settings, name: str) -> PatchPlan:
    plans = load_plans(settings.checked_plans_dir, backend_catalog(settings))
    if name not in plans:
        known = ", ".join(sorted(plans)) or "none"
        raise NotFound(f"no plan named {name!r} in {settings.plans_dir} (plans: {known})")
    return plans[name].plan


def _no_database(settings: Settings) -> str | None:
    path = settings.database.sqlite_path
    if path is not None and path != ":memory:" and not Path(path).exists():
        return f"no database at {path}"
    return None


async def _dry_run_baseline(
    settings: Settings, plan: PatchPlan, names: list[str]
) -> tuple[HostsBaseline | None, str]:
    """The baseline over the stored assessments, or None and why there are none to read."""
    if missing := _no_database(settings):
        return None, missing  # a dry run creates nothing, not even an empty SQLite file
    try:
        stored = await stored_assessments(settings, names)
    except PatchGateError as exc:
        return None, str(exc)
    return baseline_of(settings, plan.packages, names, stored), ""


@asynccontextmanager
async def _database(settings: Settings) -> AsyncIterator[Database]:
    db = open_database(settings)
    try:
        with schema_hint():
            yield db
    finally:
        await db.dispose()


async def start(args: argparse.Namespace, settings: Settings) -> int:
    if not args.dry_run:
        return await decide(args, settings, "/rollouts", {"plan": args.plan})
    plan = _plan(settings, args.plan)
    hosts = FileInventory(settings.inventory_sources, csv_columns=settings.csv_column_map).hosts()
    layout = layout_rollout(plan, hosts)
    names = [name for ring in layout.rings for name in ring.hosts]
    baseline, why_none = await _dry_run_baseline(settings, plan, names)
    if args.json:
        data = {"plan": plan.name, "dry_run": True, **layout.to_json()}
        data["baseline"] = baseline.to_json() if baseline else {"unavailable": why_none}
        print_json(data)
    else:
        print(
            f"Dry run of plan {plan.name} against {len(hosts)} inventory hosts (nothing written):"
        )
        print(render_layout(layout))
        if baseline is None:
            print(f"Patch baseline: no stored assessments to apply it to ({why_none}).")
        else:
            print("Patch baseline over the hosts' stored assessments:")
            print("\n".join(render_baseline(baseline)))
            print(engine_outlook(baseline, plan.packages))
    return 0


async def list_rollouts(args: argparse.Namespace, settings: Settings) -> int:
    async with _database(settings) as db, read_only(db) as session:
        query = sa.select(Rollout).order_by(Rollout.id.desc()).limit(args.limit)
        if args.state:
            query = query.where(Rollout.state == args.state)
        rows = list(await session.scalars(query))
    if args.json:
        print_json([_rollout_json(r) for r in rows])
        return 0
    if not rows:
        print("no rollouts")
    for r in rows:
        hold = f"  HELD: {r.hold_reason}" if r.hold_reason else ""
        hold += f"  {texts.emergency_label(r).rstrip(': ')}" if r.emergency else ""
        print(
            f"#{r.id:<5} {r.plan_name:<20} {r.state:<18} by {r.requested_by:<12} "
            f"{r.created_at:%Y-%m-%d %H:%M}Z{hold}"
        )
    return 0


def _rollout_json(r: Rollout) -> dict[str, Any]:
    return {
        "id": r.id,
        "plan": r.plan_name,
        "state": r.state,
        "requested_by": r.requested_by,
        "created_at": r.created_at,
        "started_at": r.started_at,
        "finished_at": r.finished_at,
        "hold": r.hold_reason,
        "reason": r.reason,
        "patchset_hash": r.patchset_hash,
        "emergency": r.emergency,
        "emergency_cve": r.emergency_cve,
    }


async def show(args: argparse.Namespace, settings: Settings) -> int:
    async with _database(settings) as db, read_only(db) as session:
        rollout = await session.get(Rollout, args.rollout_id)
        if rollout is None:
            raise NotFound(f"rollout {args.rollout_id} does not exist")
        rings = list(
            await session.scalars(
                sa.select(Ring).where(Ring.rollout_id == rollout.id).order_by(Ring.position)
            )
        )
        gates = {
            g.ring_id: g
            for g in await session.scalars(sa.select(Gate).where(Gate.rollout_id == rollout.id))
        }
        runs = list(
            await session.scalars(
                sa.select(HostRun)
                .where(HostRun.rollout_id == rollout.id)
                .order_by(HostRun.batch, HostRun.host_name)
            )
        )
        # Windows/macOS hosts show their family and build (issue 21); Linux as before.
        # The rollout's hosts as a subquery: a list of every name is one parameter a host.
        oses = {
            h.name: os_label(h.os_family, None, None, h.build)
            for h in await session.scalars(
                sa.select(Host).where(
                    Host.name.in_(
                        sa.select(HostRun.host_name).where(HostRun.rollout_id == rollout.id)
                    ),
                    Host.os_family.in_(["windows", "macos"]),
                )
            )
        }
    by_ring: dict[int, list[HostRun]] = {}
    for run in runs:
        by_ring.setdefault(run.ring_id, []).append(run)
    if args.json:
        data = _rollout_json(rollout)
        data["patchset"] = rollout.patchset
        if rollout.patchset_updates:  # the vendor updates' KB/catalog ids (issue 21)
            data["patchset_updates"] = rollout.patchset_updates
        data["rings"] = [
            {
                "name": ring.name,
                "state": ring.state,
                "batches": ring.batch_count,
                "failure_budget": ring.failure_budget,
                "reason": ring.reason,
                "gate": None
                if ring.id not in gates
                else {
                    "id": gates[ring.id].id,
                    "kind": gates[ring.id].kind,
                    "state": gates[ring.id].state,
                    "quorum": gates[ring.id].quorum,
                    "patchset_hash": gates[ring.id].patchset_hash,
                    "expires_at": gates[ring.id].expires_at,
                    "untested_platforms": gates[ring.id].untested_platforms,
                },
                "hosts": [
                    {
                        "host": h.host_name,
                        "batch": h.batch,
                        "state": h.state,
                        "error": h.error,
                        "packages": h.packages,
                        "not_fully_patched": h.left_over or None,
                        **({"os": oses[h.host_name]} if h.host_name in oses else {}),
                    }
                    for h in by_ring.get(ring.id, [])
                ],
            }
            for ring in rings
        ]
        print_json(data)
        return 0
    print(
        f"{texts.emergency_label(rollout)}Rollout #{rollout.id} of plan {rollout.plan_name}: "
        f"{rollout.state} (requested by {rollout.requested_by})"
    )
    if rollout.hold_reason:
        print(f"  HELD by {rollout.hold_by}: {rollout.hold_reason}")
    if rollout.reason:
        print(f"  {rollout.reason}")
    if rollout.patchset_hash:
        print(f"  patch set {rollout.patchset_hash}")
        for platform, packages in sorted((rollout.patchset or {}).items()):
            known = (rollout.patchset_updates or {}).get(platform, {})
            listed = (
                ", ".join(patch_label(n, v, known.get(n)) for n, v in sorted(packages.items()))
                or "nothing"
            )
            print(f"    {platform}: {listed}")
    for ring in rings:
        print(
            f"  ring {ring.name}: {ring.state} ({ring.host_count} hosts, "
            f"{ring.batch_count} batches, failure budget {ring.failure_budget})"
        )
        gate = gates.get(ring.id)
        if gate is not None:
            line = f"    gate ({gate.kind}): {gate.state}, quorum {gate.quorum}"
            if gate.state == "open" and gate.expires_at:
                line += f", expires {gate.expires_at:%Y-%m-%d %H:%M}Z"
            if gate.untested_platforms:
                line += f"; untested platforms: {', '.join(gate.untested_platforms)}"
            print(line)
        for run in by_ring.get(ring.id, []):
            extra = f"  [{oses[run.host_name]}]" if run.host_name in oses else ""
            extra += f"  ({run.error})" if run.error else ""
            if run.left_over:
                left = ", ".join(f"{p} ({why})" for p, why in sorted(run.left_over.items()))
                extra += f"  NOT FULLY PATCHED: {left}"
            print(f"    {run.host_name:<28} batch {run.batch + 1:<3} {run.state}{extra}")
    return 0


async def approve(args: argparse.Namespace, settings: Settings) -> int:
    path = f"/rollouts/{args.rollout_id}/approve"
    return await decide(args, settings, path, {"hash": args.shown_hash})


async def reject(args: argparse.Namespace, settings: Settings) -> int:
    if not args.reason.strip():
        raise InputError("--reason must not be empty")
    path = f"/rollouts/{args.rollout_id}/reject"
    return await decide(args, settings, path, {"reason": args.reason})


async def control(args: argparse.Namespace, settings: Settings) -> int:
    path = f"/rollouts/{args.rollout_id}/{args.kind.value}"
    return await decide(args, settings, path, {"reason": args.reason})


__all__ = ["PatchGateError", "register"]
