"""Evidence bundles from ``patchgate report build`` and ``/patch report``: the period
options, the request built from Settings, a build on a database engine of its own, and the
few lines of figures both faces print. The bundle itself is ``workflows.reports``."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from zoneinfo import ZoneInfo

from bot.settings import Settings
from workflows import audit
from workflows.db import DatabaseURLs, create_database
from workflows.errors import InputError
from workflows.reports import Bundle, Period, ReportRequest, build_bundle
from workflows.timeparse import parse_time

DEFAULT_DAYS = 90
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def version_compare(manager: str | None, a: str, b: str) -> int:
    """Debian or RPM version order by the host's package manager (ValueError if unknown)."""
    from integrations.packages.versions import compare as compare_versions

    if manager not in ("apt", "dnf", "yum", "zypper"):
        raise ValueError(f"no version order for package manager {manager!r}")
    return compare_versions(manager, a, b)


def parse_when(
    text: str, zone: ZoneInfo, *, end_of_day: bool, option: str, now: dt.datetime | None = None
) -> dt.datetime:
    """A date (its start, or the end of that day), or any time the shared parser reads
    (``2026-03-31T18:00``, ``30d ago``, ``in 2h``)."""
    text = text.strip()
    if _DATE.match(text):
        try:
            day = dt.date.fromisoformat(text)
        except ValueError:
            raise InputError(f"{option} {text!r} is not a date (YYYY-MM-DD)") from None
        if end_of_day:
            day += dt.timedelta(days=1)
        return dt.datetime.combine(day, dt.time(0, 0), tzinfo=zone)
    try:
        return parse_time(text, now=now or dt.datetime.now(dt.UTC), default_zone=zone.key)
    except InputError:
        raise InputError(
            f"{option} {text!r} is not a date (YYYY-MM-DD), a time (2026-03-31T18:00, "
            "2026-03-31T18:00+01:00) or a relative time (30d ago)"
        ) from None


def parse_period(since: str | None, until: str | None, *, now: dt.datetime, zone: str) -> Period:
    """The report period from the two options (InputError for bad or reversed dates)."""
    tz = ZoneInfo(zone)
    end = parse_when(until, tz, end_of_day=True, option="--until", now=now) if until else now
    start = (
        parse_when(since, tz, end_of_day=False, option="--since", now=now)
        if since
        else end - dt.timedelta(days=DEFAULT_DAYS)
    )
    if end <= start:
        raise InputError(
            f"--since ({start.isoformat()}) must be before --until ({end.isoformat()})"
        )
    return Period(start.astimezone(dt.UTC), end.astimezone(dt.UTC))


def report_request(settings: Settings, period: Period, framework: str | None) -> ReportRequest:
    """The request; bundles are signed with PATCHGATE_SIGNING_KEY when it is set."""
    signer = None if settings.signing_key is None else audit.load_signer(settings.signing_key)
    return ReportRequest(
        period=period,
        framework=framework,
        sla_days=settings.sla_day_map,
        compare=version_compare,
        signer=signer,
    )


async def build_for(urls: DatabaseURLs, request: ReportRequest, out: Path) -> Bundle:
    """Build a bundle with a database engine of its own (the Slack face runs this in a
    thread with its own event loop, so the serve loop stays responsive)."""
    db = create_database(urls)
    try:
        return await build_bundle(db, request, out)
    finally:
        await db.dispose()


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
    chain = bundle.manifest["audit"]
    lines.append(f"audit events: {chain['slice']['count']}")
    if chain["pruned"]:
        lines.append(f"period partly pruned: events before {chain['pruned']['before']} archived")
    signing = bundle.manifest.get("signing")
    lines.append(
        f"signed with Ed25519 key {signing['key_id']}"
        if signing
        else "NOT signed (set PATCHGATE_SIGNING_KEY)"
    )
    return lines


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"
