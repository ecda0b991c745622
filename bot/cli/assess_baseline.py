"""The plan's baseline over stored assessments, as the engine will apply it: shared by
``patchgate assess --plan`` and ``patchgate rollout start --dry-run`` (kept apart from
``assess`` so ``rollout`` does not import the advisory loaders and the executor)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from bot.cli.common import cli_clock, open_database, schema_hint
from bot.settings import Settings
from workflows import assessment
from workflows.db import read_only
from workflows.plans import PackageSelection

Stored = dict[str, tuple[dt.datetime, list[assessment.Finding]]]


def baseline_of(
    settings: Settings, selection: PackageSelection, hosts: Sequence[str], stored: Stored
) -> assessment.HostsBaseline:
    """The baseline over the hosts' fresh stored assessments, as the engine will apply it
    (fresh: assessed within PATCHGATE_FACTS_MAX_AGE_HOURS)."""
    return assessment.baseline_for(
        hosts,
        stored,
        selection,
        now=cli_clock(settings).now(),
        max_age=dt.timedelta(hours=settings.facts_max_age_hours),
    )


def engine_outlook(baseline: assessment.HostsBaseline, selection: PackageSelection) -> str:
    """What the engine will do with these assessments when the rollout starts (one line)."""
    unassessed = [*baseline.missing, *(h for h, _ in baseline.stale)]
    if not unassessed:
        return "The patch set will be pinned from these assessments."
    refusal = assessment.refusal_without_assessment("", unassessed, selection)
    if not baseline.fresh and refusal is not None:
        return (
            f"The rollout would fail at assessment: {refusal.removeprefix('unknown platform: ')}."
        )
    if refusal is not None:
        return (
            f"{len(unassessed)} host(s) without a fresh assessment take their platform's set "
            "from an assessed host; a platform with none fails the rollout (the baseline "
            "needs advisory data)."
        )
    return (
        f"{len(unassessed)} host(s) without a fresh assessment: a platform with no assessed "
        "host is pinned from a host's upgradable list (by name and security flag)."
    )


async def stored_assessments(settings: Settings, hosts: Sequence[str]) -> Stored:
    """The latest stored assessment of each of ``hosts`` (read only)."""
    db = open_database(settings)
    try:
        with schema_hint():
            async with read_only(db) as session:
                return await assessment.latest(session, hosts=hosts)
    finally:
        await db.dispose()
