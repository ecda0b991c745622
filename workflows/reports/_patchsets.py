"""patchset.csv: every entry of the pinned patch sets of the period's rollouts, one row
each, with its kind (a ``package`` at a version, or a vendor ``update``: a Windows KB or
a fleet tool's catalog entry, with its KB number, catalog id, title and classification;
issue 21).

``report verify`` recomputes the rows of every rollout whose ``rollout.pinned`` event is
in the bundle from that event (its ``patchset``, and its ``updates`` when the set has
vendor updates); a rollout pinned before the period is not recomputed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from workflows.models import Rollout
from workflows.reports._recompute import EventFacts, _compare, _text
from workflows.reports._zipout import ZipOut, stream

NAME = "patchset.csv"
HEADER = (
    "rollout",
    "platform",
    "kind",
    "name",
    "version",
    "kb",
    "catalog_id",
    "title",
    "classification",
)
IDENTITY = ("kb", "catalog_id", "title", "classification")


def entry_rows(
    rollout_id: object,
    patchset: Mapping[str, Any] | None,
    updates: Mapping[str, Any] | None,
) -> list[list[Any]]:
    """The rows of one rollout's pinned set, sorted by platform and name."""
    out: list[list[Any]] = []
    for platform, packages in sorted((patchset or {}).items()):
        known = (updates or {}).get(platform) or {}
        for name, version in sorted((packages or {}).items()):
            identity = known.get(name) if isinstance(known, Mapping) else None
            identity = identity if isinstance(identity, Mapping) else {}
            kind = "update" if identity.get("kind") == "update" else "package"
            out.append(
                [
                    rollout_id,
                    platform,
                    kind,
                    name,
                    version,
                    *(identity.get(key) for key in IDENTITY),
                ]
            )
    return out


async def write_patchsets(session: AsyncSession, out: ZipOut, rollouts: Any) -> None:
    """``rollouts``: the select of the period's rollout ids (as rollouts.csv's)."""
    query = (
        sa.select(Rollout.id, Rollout.patchset, Rollout.patchset_updates)
        .where(Rollout.id.in_(rollouts))
        .order_by(Rollout.id)
    )
    with out.csv(NAME, HEADER) as writer:
        async for r in stream(session, query):
            for row in entry_rows(r.id, r.patchset, r.patchset_updates):
                writer.row(row)


def check_patchsets(rows: list[dict[str, str]], facts: EventFacts, problems: list[str]) -> None:
    """A problem for every row of a rollout pinned in the bundle's events that differs
    from its ``rollout.pinned`` event, and for every row missing or added."""
    by_rollout: dict[str, dict[tuple[str, str], tuple[int, dict[str, str]]]] = {}
    for number, row in enumerate(rows, start=2):
        key = (row.get("platform", ""), row.get("name", ""))
        by_rollout.setdefault(row.get("rollout", ""), {})[key] = (number, row)
    for rid, patchset in sorted(facts.pinned.items()):
        have = by_rollout.get(rid, {})
        wanted = entry_rows(rid, patchset, facts.pinned_updates.get(rid))
        seen = set()
        for values in wanted:
            expected = {col: _text(v) for col, v in zip(HEADER, values, strict=True)}
            key = (expected["platform"], expected["name"])
            seen.add(key)
            found = have.get(key)
            if found is None:
                problems.append(
                    f"{NAME}: no row for {key[1]} ({key[0]}) of rollout {rid} (rollout.pinned)"
                )
                continue
            number, row = found
            where = f"{NAME} row {number} (rollout {rid}, {key[1]})"
            _compare(problems, where, row, expected, "the rollout.pinned event")
        for key in sorted(set(have) - seen):
            problems.append(
                f"{NAME} row {have[key][0]} (rollout {rid}, {key[1]}): an entry the "
                "rollout.pinned event does not pin"
            )
