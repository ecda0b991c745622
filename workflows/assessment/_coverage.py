"""Coverage gaps: inventory hosts PatchGate cannot vouch for (unreachable, never
gathered, or facts older than ``PATCHGATE_FACTS_MAX_AGE_HOURS``). Listed by
``inventory show|refresh``, ``/patch status`` and App Home, never silently dropped."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Protocol

from workflows.ports import InventoryHost


class SeenHost(Protocol):
    """What coverage needs of a host's stored row (a ``Host``, or a slimmer read of it)."""

    @property
    def reachable(self) -> bool | None: ...
    @property
    def last_error(self) -> str | None: ...
    @property
    def facts_at(self) -> dt.datetime | None: ...


def coverage_gaps(
    hosts: Sequence[InventoryHost],
    rows: Mapping[str, SeenHost],
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
