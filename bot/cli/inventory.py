"""CLI group: inventory — show the hosts PatchGate sees, refresh their facts over SSH.

``refresh`` gathers facts with the executor's concurrency (PATCHGATE_SSH_CONCURRENCY),
records them on each host with the time seen, and lists the coverage gaps: hosts
unreachable, or whose facts are older than PATCHGATE_FACTS_MAX_AGE_HOURS. Gaps make
the exit status 3, so a cron job notices.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
from collections.abc import Sequence
from typing import Any

from bot.backends import read_inventory
from bot.cli.common import cli_clock, command, group, open_database, print_json, schema_hint
from bot.gather import executor_for, gather, record
from bot.settings import Settings
from integrations.inventory.backend_source import SOURCE_VAR, tool_gaps
from workflows import queries
from workflows.assessment import coverage_gaps
from workflows.db import read_only, unit_of_work
from workflows.hostos import inventory_build, inventory_family, os_label
from workflows.models import Host
from workflows.plans import parse_selector
from workflows.ports import InventoryHost


def register(sub: Any) -> None:
    commands = group(sub, "inventory", "show inventory hosts, refresh their facts")
    p = command(
        commands, "show", show, "list hosts (optionally those a selector takes)", json_flag=True
    )
    p.add_argument("selector", nargs="?", help="e.g. 'group:prod and not tag:pci'")
    p.add_argument(
        "--vars",
        action="store_true",
        help="also list every host variable the inventory gave (secrets redacted), as "
        "`ansible-inventory --list` shows them",
    )
    p = command(
        commands, "refresh", refresh, "gather facts over SSH and list coverage gaps", json_flag=True
    )
    p.add_argument("selector", nargs="?")


clock = cli_clock


async def selected_hosts(settings: Settings, selector: str | None) -> list[InventoryHost]:
    """The inventory's hosts (files and ``backend:`` entries) matching the selector."""
    hosts = await read_inventory(settings)
    if not selector:
        return list(hosts)
    parsed = parse_selector(selector)
    return [h for h in hosts if parsed.matches(h)]


# Host variables whose values are never shown: anything named like a password or
# passphrase (ansible_password, ansible_become_pass, sudo_password, ssh_key_passphrase),
# a secret, a token, an API key, a credential or a vault value.
_SECRET_VAR = re.compile(r"(?i)(pass|secret|token|api_?key|credential|vault)")
REDACTED = "(redacted)"


def host_vars(host: InventoryHost) -> dict[str, Any]:
    """Every variable the inventory gave the host, secrets replaced by ``(redacted)``."""
    return {
        name: REDACTED if _SECRET_VAR.search(name) else value
        for name, value in sorted(host.vars.items())
    }


def host_json(host: InventoryHost) -> dict[str, Any]:
    return {
        "name": host.name,
        "address": host.address,
        "port": host.port,
        "user": host.user,
        "groups": sorted(host.groups),
        "tags": sorted(host.tags),
        "environment": host.environment,
        "owner": host.owner,
        "criticality": host.criticality,
        "internet_facing": host.internet_facing,
        "jump_host": host.jump_host,
        "os_family": inventory_family(host),
        "os_build": inventory_build(host),
        "source": host.vars.get(SOURCE_VAR, "file"),
        "vars": host_vars(host),
    }


async def show(args: argparse.Namespace, settings: Settings) -> int:
    hosts = await selected_hosts(settings, args.selector)
    if args.json:
        print_json({"hosts": [host_json(h) for h in hosts], "coverage_gaps": tool_gaps(hosts)})
        return 0
    for h in hosts:
        extra = [
            f"groups={','.join(sorted(h.groups)) or '-'}",
            f"env={h.environment or '-'}",
            f"criticality={h.criticality or '-'}",
        ]
        if h.tags:
            extra.append(f"tags={','.join(sorted(h.tags))}")
        if h.internet_facing:
            extra.append("internet-facing")
        if (family := inventory_family(h)) is not None:
            build = inventory_build(h)
            extra.append(f"os={family}" + (f"/{build}" if build else ""))
        if SOURCE_VAR in h.vars:
            extra.append(f"source={h.vars[SOURCE_VAR]}")
        print(f"{h.name:<32} {h.connect_address}:{h.port}  {'  '.join(extra)}")
        if args.vars:
            for name, value in host_vars(h).items():
                shown = value if isinstance(value, str) else json.dumps(value, default=str)
                print(f"    {name}={shown}")
    print(f"{len(hosts)} host(s)")
    for name, why in sorted(tool_gaps(hosts).items()):
        print(f"coverage gap: {name}: {why}")
    return 0


async def refresh(args: argparse.Namespace, settings: Settings) -> int:
    hosts = await selected_hosts(settings, args.selector)
    db = open_database(settings)
    try:
        with schema_hint():
            async with executor_for(settings, db) as executor:
                results = await gather(
                    executor, hosts, concurrency=settings.ssh_concurrency, upgradable=False
                )
            now = clock(settings).now()
            async with unit_of_work(db) as session:
                await record(session, results, now=now)
            async with read_only(db) as session:
                rows = await queries.hosts_by_name(session, names=(h.name for h in hosts))
    finally:
        await db.dispose()
    gaps = coverage_gaps(
        hosts, rows, now=now, max_age=dt.timedelta(hours=settings.facts_max_age_hours)
    )
    _report(args, results_ok=[r.host.name for r in results if r.facts], gaps=gaps, rows=rows)
    return 3 if gaps else 0


def _report(
    args: argparse.Namespace,
    *,
    results_ok: Sequence[str],
    gaps: Sequence[tuple[str, str]],
    rows: dict[str, Host],
) -> None:
    if args.json:
        print_json(
            {
                "refreshed": sorted(results_ok),
                "coverage_gaps": [{"host": h, "why": why} for h, why in gaps],
                "facts": {
                    n: {
                        "os": os_label(r.os_family, r.os_id, r.os_version, r.build)
                        if r.os_family in ("windows", "macos")
                        else f"{r.os_id} {r.os_version}",
                        "os_family": r.os_family or "linux",
                        "build": r.build,
                        "kernel": r.kernel,
                        "package_manager": r.package_manager,
                        "reboot_required": r.reboot_required,
                        "facts_at": r.facts_at,
                    }
                    for n, r in sorted(rows.items())
                    if r.facts_at is not None
                },
            }
        )
        return
    print(f"Facts recorded for {len(results_ok)} host(s).")
    if gaps:
        print(f"Coverage gaps ({len(gaps)}):")
        for host, why in gaps:
            print(f"  {host}: {why}")
    else:
        print("No coverage gaps.")
