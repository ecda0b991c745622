"""CLI group: debug — see what PatchGate understands from a captured command output.

``patchgate debug parse MANAGER KIND FILE`` prints the parse as JSON, including the
lines it did not understand, so an operator can check the parsers on their own hosts.
Needs no database and no Slack settings.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from bot.cli.common import command, group, print_json
from bot.settings import Settings
from workflows.errors import InputError

KINDS = ("upgradable", "security", "installed", "reboot")


def register(sub: Any) -> None:
    debug = group(sub, "debug", "Diagnostics for operators.")
    parse = command(
        debug,
        "parse",
        _parse,
        "Print as JSON what PatchGate understood from a captured command output "
        "(apt: apt-get -s dist-upgrade or apt list --upgradable; dnf/yum: check-update, "
        "updateinfo list --security; zypper: --xmlout list-updates / list-patches).",
    )
    parse.add_argument("manager", metavar="MANAGER", help="apt, dnf, yum or zypper")
    parse.add_argument("kind", metavar="KIND", help=", ".join(KINDS))
    parse.add_argument("file", type=Path, metavar="FILE")
    parse.add_argument(
        "--exit-code",
        type=int,
        default=None,
        help="the command's exit code (default: one that means success for that command)",
    )


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


async def _parse(args: argparse.Namespace, settings: Settings) -> int:
    from integrations.packages import CommandOutput, driver_for

    driver = driver_for(args.manager)
    if args.kind not in KINDS:
        raise InputError(f"unknown kind {args.kind!r} (known: {', '.join(KINDS)})")
    try:
        text = args.file.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise InputError(f"cannot read {args.file}: {exc.strerror or exc}") from exc
    if args.kind == "upgradable":
        cmd = driver.list_upgradable()
    elif args.kind == "security":
        cmd = driver.security_updates() or driver.list_upgradable()
    elif args.kind == "reboot":
        cmd = driver.reboot_required()
    else:
        cmd = None
    exit_code = args.exit_code if args.exit_code is not None else (
        min(cmd.ok_exit) if cmd else 0)  # fmt: skip
    out = CommandOutput(exit_code, text, "")
    if args.kind == "upgradable":
        parsed: Any = driver.parse_upgradable(out)
    elif args.kind == "security":
        parsed = driver.parse_security(out)
    elif args.kind == "reboot":
        parsed = driver.parse_reboot(out)
    else:
        names = [line.split()[0].split(":")[0] for line in text.splitlines() if line.strip()]
        names = [n for n in names if n not in ("package",)] + [
            line.split()[1] for line in text.splitlines() if line.startswith("package ")
        ]
        parsed = driver.parse_installed(out, list(dict.fromkeys(names)))
    print_json(
        {
            "manager": driver.name,
            "kind": args.kind,
            "value": _jsonable(parsed.value),
            "notes": parsed.notes,
            "unparsed": parsed.unparsed,
        }
    )
    return 0
