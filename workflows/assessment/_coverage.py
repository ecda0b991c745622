"""Coverage gaps: inventory hosts PatchGate cannot vouch for (unreachable, never
gathered, or facts older than ``PATCHGATE_FACTS_MAX_AGE_HOURS``). Listed by
``inventory show|refresh``, ``/patch status`` and App Home, never silently dropped."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from workflows.models import Host
from workflows.ports import InventoryHost


def coverage_gaps(
    hosts: Sequence[InventoryHost],
    rows: dict[str, Host],
    *,
    now: dt.datetime,
    max_age: dt.timedelta,
) -> list[tuple[str, str]]:
    """(host, why) for every inventory host that is unreachable or whose facts are stale."""
    gaps = []
    for host in hosts:
        row = rows.get(host.name)
        if row is not None and row.reachable is False:
            gaps.append((host.name, f"unreachable: {row.last_error or 'no answer'}"))
        elif row is None or row.facts_at is None:
            gaps.append((host.name, "no facts yet"))
        elif now - row.facts_at > max_age:
            gaps.append((host.name, f"facts from {row.facts_at:%Y-%m-%d %H:%M} are stale"))
    return gaps
