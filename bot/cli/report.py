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
import datetime as dt
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from bot.cli.common import cli_clock, command, group, print_json, schema_hint
from bot.settings import Settings
from workflows.db import DatabaseURLs, create_database
from workflows.errors import InputError
from workflows.reports.figures import Period
from workflows.reports.frameworks import FRAMEWORKS

if TYPE_CHECKING:  # the bundle code (Jinja2, zip, charts) is imported when used
    from workflows.reports.bundle import Bundle, ReportRequest

DEFAULT_DAYS = 90
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def version_compare(manager: str | None, a: str, b: str) -> int:
    """Debian or RPM version order by the host's package manager (ValueError if unknown)."""
    from integrations.packages.versions import compare as compare_versions

    if manager not in ("apt", "dnf", "yum", "zypper"):
        raise ValueError(f"no version order for package manager {manager!r}")
    return compare_versions(manager, a, b)


def _when(text: str, zone: ZoneInfo, *, end_of_day: bool, option: str) -> dt.datetime:
    text = text.strip()
    try:
        if _DATE.match(text):
            day = dt.date.fromisoformat(text)
            if end_of_day:
                day += dt.timedelta(days=1)
            return dt.datetime.combine(day, dt.time(0, 0), tzinfo=zone)
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InputError(
            f"{option} {text!r} is not a date (YYYY-MM-DD) or an ISO time "
            "(2026-03-31T18:00, 2026-03-31T18:00+01:00)"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=zone)


def parse_period(since: str | None, until: str | None, *, now: dt.datetime, zone: str) -> Period:
    """The report period from the two options (InputError for bad or reversed dates)."""
    tz = ZoneInfo(zone)
    end = _when(until, tz, end_of_day=True, option="--until") if until else now
    start = (
        _when(since, tz, end_of_day=False, option="--since")
        if since
        else end - dt.timedelta(days=DEFAULT_DAYS)
    )
    if end <= start:
        raise InputError(
            f"--since ({start.isoformat()}) must be before --until ({end.isoformat()})"
        )
    return Period(start.astimezone(dt.UTC), end.astimezone(dt.UTC))


def report_request(settings: Settings, period: Period, framework: str | None) -> ReportRequest:
    from workflows.reports.bundle import ReportRequest

    return ReportRequest(
        period=period,
        framework=framework,
        sla_days=settings.sla_day_map,
        compare=version_compare,
    )


async def build_for(urls: DatabaseURLs, request: ReportRequest, out: Path) -> Bundle:
    """Build a bundle with a database engine of its own (the Slack face runs this in a
    thread with its own event loop, so the serve loop stays responsive)."""
    from workflows.reports.bundle import build_bundle

    db = create_database(urls)
    try:
        with schema_hint():
            return await build_bundle(db, request, out)
    finally:
        await db.dispose()


def _date_arg(text: str) -> str:
    """argparse check of the form (exit 2 on a typo); zones are applied in the handler."""
    try:
        _when(text, ZoneInfo("UTC"), end_of_day=False, option="date")
    except InputError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a date (YYYY-MM-DD) or an ISO time"
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
    p.add_argument("--since", type=_date_arg, help="start (a date: 00:00 that day)")
    p.add_argument("--until", type=_date_arg, help="end (a date: the end of that day); now")
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


async def build(args: argparse.Namespace, settings: Settings) -> int:
    try:
        period = parse_period(
            args.since, args.until, now=cli_clock(settings).now(), zone=settings.timezone
        )
    except InputError as exc:
        print(f"patchgate: {exc}", file=sys.stderr)
        return 2
    request = report_request(settings, period, args.framework)
    bundle = await build_for(settings.database, request, args.out or settings.report_dir)
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


def summary_lines(bundle: Bundle) -> list[str]:
    """A few lines of figures (also the Slack message)."""
    figures = bundle.figures
    lines = []
    for row in figures["time_to_patch"]:
        if row["fixes_patched"] or row["open_at_end"]:
            share = row["sla_share"]
            lines.append(
                f"{row['severity']}: {row['fixes_patched']} fixes patched, median "
                f"{_num(row['median_days'])} days, within SLA "
                + ("—" if share is None else f"{share * 100:.0f}%")
                + f", {row['open_at_end']} open"
            )
    coverage = figures["coverage"]
    lines.append(
        f"hosts: {coverage['hosts_known']} known, {coverage['hosts_assessed']} assessed, "
        f"{coverage['hosts_patched']} patched, {coverage['hosts_with_gaps']} with gaps"
    )
    audit = bundle.manifest["audit"]
    lines.append(f"audit events: {audit['slice']['count']}")
    if audit["pruned"]:
        lines.append(f"period partly pruned: events before {audit['pruned']['before']} archived")
    return lines


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


async def verify(args: argparse.Namespace, settings: Settings) -> int:
    from workflows.reports.verify import verify_bundle

    result = verify_bundle(args.bundle)
    if args.json:
        print_json(
            {
                "ok": result.ok,
                "problems": result.problems,
                "files": result.files,
                "events": result.events,
            }
        )
    elif result.ok:
        print(f"bundle OK: {result.files} files and {result.events} events verified")
    else:
        print(f"bundle CHANGED: {len(result.problems)} problem(s)")
        for problem in result.problems:
            print(f"  {problem}")
    return 0 if result.ok else 1
