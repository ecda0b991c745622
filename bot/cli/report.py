"""CLI group: report — build and verify evidence bundles.

``patchgate report build [--since DATE] [--until DATE] [--framework F] [--out DIR]``
writes one zip (see docs/reporting.md) and prints its path and the SHA-256 of its
manifest (worth recording elsewhere: it pins every file). ``patchgate report verify
BUNDLE.zip`` re-checks it offline: exit 0 when intact, 1 naming each file or event that
changed, 2 for bad input (no such file).

Dates: ``--since 2026-01-01`` is the start of that day, ``--until 2026-03-31`` the end of
that day, in PATCHGATE_TIMEZONE; ISO times are taken as given (a time without an offset
is in PATCHGATE_TIMEZONE). Without ``--until`` the period ends now; without ``--since`` it
starts 90 days before its end. The Slack face (``/patch report``) uses the same helpers.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bot.cli.common import cli_clock, command, existing_database, group, print_json, schema_hint
from bot.reporting import build_for, parse_period, parse_when, report_request, summary_lines
from bot.settings import Settings
from workflows import audit
from workflows.errors import InputError
from workflows.reports import FRAMEWORKS, verify_bundle


def _date_arg(text: str) -> str:
    """argparse check of the form (exit 2 on a typo); zones are applied in the handler."""
    try:
        parse_when(text, ZoneInfo("UTC"), end_of_day=False, option="date")
    except InputError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a date (YYYY-MM-DD), a time or a relative time (30d ago)"
        ) from None
    return text


def _zip_arg(text: str) -> Path:
    path = Path(text)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{text}: no such file")
    return path


def register(sub: Any) -> None:
    commands = group(sub, "report", "build and verify compliance evidence bundles")
    p = command(
        commands,
        "build",
        build,
        "write an evidence bundle (zip) for a period",
        json_flag=True,
    )
    p.add_argument(
        "--since", type=_date_arg, help="start (a date: 00:00 that day; a time; 30d ago)"
    )
    p.add_argument("--until", type=_date_arg, help="end (a date: the end of that day; a time); now")
    p.add_argument(
        "--framework",
        choices=FRAMEWORKS,
        help="map to one framework's controls (all four by default)",
    )
    p.add_argument("--out", type=Path, help="directory for the zip (PATCHGATE_REPORT_DIR)")

    p = command(
        commands,
        "verify",
        verify,
        "check a bundle's file hashes and its audit events' chain",
        json_flag=True,
    )
    p.add_argument("bundle", type=_zip_arg, metavar="BUNDLE.zip")
    p.add_argument(
        "--public-key",
        action="append",
        type=Path,
        metavar="FILE",
        help="Ed25519 public key(s) (PEM): the manifest's signature must verify with one",
    )


async def build(args: argparse.Namespace, settings: Settings) -> int:
    try:
        period = parse_period(
            args.since, args.until, now=cli_clock(settings).now(), zone=settings.timezone
        )
    except InputError as exc:
        print(f"patchgate: {exc}", file=sys.stderr)
        return 2
    request = report_request(settings, period, args.framework)
    with schema_hint():
        bundle = await build_for(
            existing_database(settings), request, args.out or settings.report_dir
        )
    if args.json:
        print_json(
            {
                "path": str(bundle.path),
                "manifest_sha256": bundle.manifest_sha256,
                "period": bundle.manifest["period"],
                "files": bundle.manifest["files"],
                "figures": bundle.figures,
                "audit": bundle.manifest["audit"],
            }
        )
        return 0
    print(f"wrote {bundle.path}")
    print(f"manifest SHA-256 {bundle.manifest_sha256}")
    for line in summary_lines(bundle):
        print(line)
    return 0


async def verify(args: argparse.Namespace, settings: Settings) -> int:
    try:
        keys = None if not args.public_key else [audit.load_public_key(p) for p in args.public_key]
    except InputError as exc:
        print(f"patchgate: --public-key: {exc}", file=sys.stderr)
        return 2
    result = verify_bundle(args.bundle, public_keys=keys)
    if args.json:
        print_json(
            {
                "ok": result.ok,
                "problems": result.problems,
                "files": result.files,
                "events": result.events,
                "signed_by": result.signed_by,
                "not_recomputed": result.not_recomputed,
            }
        )
    elif result.ok:
        print(f"bundle OK: {result.files} files and {result.events} events verified")
        print(
            f"signature OK: manifest.json signed by key {result.signed_by}"
            if result.signed_by
            else "signature NOT checked: give --public-key FILE"
        )
        for note in result.not_recomputed:
            print(f"not recomputed: {note}")
    else:
        print(f"bundle CHANGED: {len(result.problems)} problem(s)")
        for problem in result.problems:
            print(f"  {problem}")
    return 0 if result.ok else 1
