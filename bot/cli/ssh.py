"""CLI group: ssh — ``patchgate ssh check HOST…``: how PatchGate reaches each host.

Per host: the effective settings of every hop (the jump hosts, then the host) and where
each came from (a line of the OpenSSH config, an inventory variable, a default), the
jump chain, the keys offered, the host-key verdict and the result of ``uname -sr``.
``--bare`` checks names without the inventory (only the SSH config applies).
Exit status 1 when a host was not reached. Host keys are never accepted here.
"""

from __future__ import annotations

import argparse
from typing import Any

from bot.cli.common import command, group, open_database, print_json
from bot.settings import Settings
from integrations.inventory import FileInventory
from workflows.errors import InputError
from workflows.ports import InventoryHost


def register(sub: Any) -> None:
    commands = group(sub, "ssh", "check how PatchGate reaches hosts over SSH")
    p = command(
        commands,
        "check",
        check,
        "effective SSH settings, jump chain, keys, host key and a harmless command",
        json_flag=True,
    )
    p.add_argument("hosts", nargs="+", metavar="HOST", help="inventory host names")
    p.add_argument(
        "--bare",
        action="store_true",
        help="check the names as bare hosts, without the inventory (only the SSH config)",
    )


def _hosts(settings: Settings, names: list[str], *, bare: bool) -> list[InventoryHost]:
    if bare:
        return [InventoryHost(name=name) for name in names]
    inventory = FileInventory(settings.inventory_sources, csv_columns=settings.csv_column_map)
    known = {h.name: h for h in inventory.hosts()}
    missing = [n for n in names if n not in known]
    if missing:
        raise InputError(
            f"not in the inventory: {', '.join(missing)} (use --bare to check a name "
            "with the SSH config alone)"
        )
    return [known[name] for name in names]


async def check(args: argparse.Namespace, settings: Settings) -> int:
    from bot.app import build_ssh_executor
    from integrations.ssh.check import check as check_host
    from integrations.ssh.executor import SshExecutor

    db = open_database(settings)
    try:
        executor = build_ssh_executor(settings, db)[0]
        assert isinstance(executor, SshExecutor)
        try:
            reports = [
                await check_host(executor, host)
                for host in _hosts(settings, args.hosts, bare=args.bare)
            ]
        finally:
            executor.close()
    finally:
        await db.dispose()
    if args.json:
        print_json([r.as_dict() for r in reports])
    else:
        for report in reports:
            print(_text(report.as_dict()))
    return 0 if all(r.ok for r in reports) else 1


def _text(report: dict[str, Any]) -> str:
    lines = [f"{report['host']}: {'reached' if report['ok'] else 'NOT reached'}"]
    chain = [*report["jump_chain"], report["host"]]
    lines.append(f"  route: {' -> '.join(chain)}")
    for hop in report["hops"]:
        lines.append(f"  {hop['label']}:")
        for name, value in hop["settings"].items():
            if value in (None, [], False) and name not in hop["sources"]:
                continue
            shown = ", ".join(map(str, value)) if isinstance(value, list) else value
            source = hop["sources"].get(name, "default")
            lines.append(f"    {name:<20} {shown}  ({source})")
        lines.append(f"    {'keys':<20} {'; '.join(hop['keys']) or '-'}")
        lines.append(f"    {'host key':<20} {hop['host_key']}")
    for warning in report["warnings"]:
        lines.append(f"  warning: {warning}")
    lines.append(f"  result: {report['result']}")
    return "\n".join(lines)
