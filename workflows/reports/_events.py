"""events.jsonl: the period's slice of the audit chain, anchored on the hash before it."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from workflows import audit
from workflows.errors import AuditChainBroken
from workflows.models import AuditHead, Event
from workflows.reports._figures import Period
from workflows.reports._zipout import ZipOut, stream, ts

EVENTS_FORMAT = "patchgate-events/1"


@dataclass
class Slice:
    prev_hash: str
    first_seq: int
    last_seq: int
    last_hash: str
    count: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "prev_hash": self.prev_hash,
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "last_hash": self.last_hash,
            "count": self.count,
        }


def _seq(body: str) -> int:
    seq = json.loads(body).get("seq")
    return int(seq) if isinstance(seq, int) else 0


async def _anchor(session: AsyncSession, period: Period) -> tuple[int | None, int | None, Slice]:
    lo, hi = (
        await session.execute(
            sa.select(sa.func.min(Event.id), sa.func.max(Event.id)).where(
                Event.at >= period.since, Event.at < period.until
            )
        )
    ).one()
    if lo is not None:
        first = (
            await session.execute(sa.select(Event.prev_hash, Event.body).where(Event.id == lo))
        ).one()
        seq = _seq(first.body) - 1
        return lo, hi, Slice(first.prev_hash, seq + 1, seq, first.prev_hash)
    before = await session.scalar(sa.select(sa.func.max(Event.id)).where(Event.at < period.since))
    if before is not None:
        row = (
            await session.execute(sa.select(Event.hash, Event.body).where(Event.id == before))
        ).one()
        seq = _seq(row.body)
        return None, None, Slice(row.hash, seq + 1, seq, row.hash)
    checkpoint = await audit.latest_checkpoint(session) or audit.GENESIS
    return (
        None,
        None,
        Slice(checkpoint.prev_hash, checkpoint.seq + 1, checkpoint.seq, checkpoint.prev_hash),
    )


async def write_events(session: AsyncSession, out: ZipOut, period: Period) -> Slice:
    lo, hi, chain = await _anchor(session, period)
    with out.entry("events.jsonl") as sink:
        sink.write(
            audit.canonical_json(
                {
                    "anchor": {"prev_hash": chain.prev_hash, "seq": chain.first_seq - 1},
                    "format": EVENTS_FORMAT,
                }
            )
            + "\n"
        )
        if lo is not None:
            query = (
                sa.select(Event.id, Event.body, Event.prev_hash, Event.hash, Event.key_id)
                .where(Event.id >= lo, Event.id <= hi)
                .order_by(Event.id)
            )
            prev = chain.prev_hash
            keys = audit.session_keys(session)
            async for e in stream(session, query):
                ok = audit.hash_matches(
                    keys, prev_hash=e.prev_hash, body=e.body, stored=e.hash, kid=e.key_id
                )
                if e.prev_hash != prev or ok is not True:
                    raise AuditChainBroken(
                        e.id,
                        f"the audit log does not verify at event {e.id}; run "
                        "`patchgate audit verify` (no bundle was written)",
                    )
                # == canonical_json({"body", "hash", "id", "key_id", "prev_hash"}), written out
                kid = "null" if e.key_id is None else f'"{e.key_id}"'
                sink.write(
                    f'{{"body":{json.dumps(e.body, ensure_ascii=False)},"hash":"{e.hash}",'
                    f'"id":{e.id},"key_id":{kid},"prev_hash":"{e.prev_hash}"}}\n'
                )
                sink.rows += 1
                prev = e.hash
            chain.count = sink.rows
            chain.last_hash = prev
            chain.last_seq = chain.first_seq + chain.count - 1
    return chain


async def pruned_info(session: AsyncSession, period: Period) -> dict[str, Any] | None:
    """Whether ``audit prune`` removed events at or after the period's start, and how
    (the newest checkpoint; the remaining events verify from its hash)."""
    checkpoint = await audit.period_pruned(session, since=period.since)
    if checkpoint is None:
        return None
    return {
        "before": ts(checkpoint.before),
        "checkpoint_seq": checkpoint.seq,
        "checkpoint_hash": checkpoint.prev_hash,
        "archived_events": checkpoint.count,
        "archive": checkpoint.archive_name,
        "archive_sha256": checkpoint.archive_sha256,
    }


def pruned_text(pruned: Mapping[str, Any] | None) -> str | None:
    if pruned is None:
        return None
    text = (
        f"Audit events before {pruned['before']} were pruned (archived and removed); "
        f"events of the period before then are not in events.jsonl. The remaining chain "
        f"starts after seq {pruned['checkpoint_seq']} (hash {pruned['checkpoint_hash'][:16]}…)."
    )
    if pruned.get("archive"):
        text += f" Archive: {pruned['archive']} (SHA-256 {pruned['archive_sha256']})."
    return text


async def audit_head(session: AsyncSession) -> dict[str, Any]:
    head = (
        await session.execute(
            sa.select(AuditHead.count, AuditHead.last_event_id, AuditHead.last_hash).where(
                AuditHead.id == audit.HEAD_ID
            )
        )
    ).one_or_none()
    if head is None:
        return {"count": 0, "last_event_id": None, "last_hash": audit.GENESIS_HASH}
    return {"count": head.count, "last_event_id": head.last_event_id, "last_hash": head.last_hash}
