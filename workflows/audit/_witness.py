"""Witnessed heads: the chain's head (seq, event id, hash, time) signed with the Ed25519
signing key and appended to a JSON Lines file outside the database, which the operator
ships elsewhere. ``audit verify --witness FILE`` checks the database against every line:
a rewrite, truncation or wipe below a witnessed head is named, even one made with the
audit key (the database cannot un-sign what left it).

The leader appends a line when a rollout has ended since the last witnessed head, and at
least every ``PATCHGATE_AUDIT_WITNESS_INTERVAL`` seconds while the head moves
(:func:`witness_if_due`). The file itself is the job's state: its last line says what was
witnessed last, so a restart or a takeover carries on from it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from workflows.audit._chain import canonical_json, format_time, read_head
from workflows.audit._checkpoints import Checkpoint
from workflows.audit._signing import PublicKey, Signer
from workflows.audit._verify import VerifyResult
from workflows.db import Database
from workflows.errors import AuditChainBroken
from workflows.models import Event

WITNESS_FORMAT = "patchgate-audit-witness/1"
ROLLOUT_END_KINDS = (
    "rollout.succeeded",
    "rollout.failed",
    "rollout.rolled_back",
    "rollout.rejected",
    "rollout.aborted",
)
_SIGNED = ("format", "seq", "event_id", "hash", "audit_key_id", "witnessed_at", "signing_key_id")


@dataclass(frozen=True)
class Witnessed:
    line: int
    seq: int
    event_id: int
    hash: str
    witnessed_at: str
    signing_key_id: str

    @property
    def description(self) -> str:
        return (
            f"witness line {self.line} (seq {self.seq}, hash {self.hash[:12]}…, "
            f"witnessed {self.witnessed_at})"
        )


def _payload(record: dict[str, Any]) -> bytes:
    return canonical_json({name: record.get(name) for name in _SIGNED}).encode("utf-8")


def sign_head(
    *,
    seq: int,
    event_id: int,
    hash_: str,
    audit_key_id: str | None,
    at: dt.datetime,
    signer: Signer,
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "format": WITNESS_FORMAT,
        "seq": seq,
        "event_id": event_id,
        "hash": hash_,
        "audit_key_id": audit_key_id,
        "witnessed_at": format_time(at),
        "signing_key_id": signer.key_id,
    }
    record["signature"] = signer.sign(_payload(record))
    return record


def _last_line(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        handle.seek(max(0, size - 4096))
        tail = handle.read().splitlines()
    for raw in reversed(tail):
        if raw.strip():
            try:
                obj = json.loads(raw)
            except ValueError:
                return None
            return obj if isinstance(obj, dict) else None
    return None


def _append_line(path: Path, record: dict[str, Any]) -> None:
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(canonical_json(record) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


async def witness_if_due(
    db: Database,
    *,
    signer: Signer,
    path: Path,
    now: dt.datetime,
    interval: dt.timedelta,
    force: bool = False,
) -> dict[str, Any] | None:
    """Append the signed head to ``path`` when it moved since the last line and a rollout
    ended since, or ``interval`` passed (or ``force``); return the record, or None."""
    last = _last_line(path)
    last_seq = int(last["seq"]) if last and isinstance(last.get("seq"), int) else 0
    last_id = int(last["event_id"]) if last and isinstance(last.get("event_id"), int) else 0
    last_at = str(last.get("witnessed_at")) if last else None
    async with db.read_sessions() as session:
        try:
            head = await read_head(session)
            if head is None or head.count == last_seq:
                return None
            due = force or last_at is None
            if not due and last_at is not None:
                when = dt.datetime.fromisoformat(last_at.replace("Z", "+00:00"))
                due = now - when >= interval
            if not due:
                ended = await session.scalar(
                    sa.select(Event.id)
                    .where(Event.id > last_id, Event.kind.in_(ROLLOUT_END_KINDS))
                    .limit(1)
                )
                due = ended is not None
            if not due:
                return None
            record = sign_head(
                seq=head.count,
                event_id=head.last_event_id,
                hash_=head.last_hash,
                audit_key_id=head.key_id,
                at=now,
                signer=signer,
            )
        finally:
            await session.rollback()
    _append_line(path, record)
    return record


def read_witness(path: Path, public_keys: Sequence[PublicKey]) -> list[Witnessed]:
    """Every line of a witness file, each signature checked with the public key its
    ``signing_key_id`` names (AuditChainBroken naming the line otherwise)."""
    by_id = {key.key_id: key for key in public_keys}
    found: list[Witnessed] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise AuditChainBroken(None, f"witness file {path}: cannot read it ({exc})") from None
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        where = f"witness file {path.name} line {number}"
        try:
            record = json.loads(raw)
            if record.get("format") != WITNESS_FORMAT:
                raise ValueError("no witness format")
            item = Witnessed(
                line=number,
                seq=int(record["seq"]),
                event_id=int(record["event_id"]),
                hash=str(record["hash"]),
                witnessed_at=str(record["witnessed_at"]),
                signing_key_id=str(record["signing_key_id"]),
            )
            signature = str(record["signature"])
        except (ValueError, KeyError, TypeError, AttributeError):
            raise AuditChainBroken(None, f"{where}: not a witnessed head") from None
        key = by_id.get(item.signing_key_id)
        if key is None:
            raise AuditChainBroken(
                None,
                f"{where}: signed by key id {item.signing_key_id}, not one of the public "
                f"keys given ({', '.join(sorted(by_id)) or 'none'})",
            )
        if not key.verify(_payload(record), signature):
            raise AuditChainBroken(None, f"{where}: signature does not verify (edited)")
        found.append(item)
    return found


def wanted_seqs(witnessed: Sequence[Witnessed]) -> frozenset[int]:
    return frozenset(item.seq for item in witnessed)


def check_witnessed(
    result: VerifyResult, witnessed: Sequence[Witnessed], *, start: Checkpoint | None
) -> int:
    """Check a verified chain (``result``, walked with :func:`wanted_seqs`) against every
    witnessed head; return how many were matched against an event still in the database
    (heads older than a prune checkpoint are in its archive)."""
    matched = 0
    floor = start.seq if start is not None else 0
    for item in witnessed:
        if item.seq > result.last_seq:
            raise AuditChainBroken(
                None,
                f"{item.description} is beyond the database's head (seq {result.last_seq}): "
                + (
                    "every event was wiped"
                    if result.last_seq == 0
                    else f"the events after seq {result.last_seq} were removed (truncated)"
                ),
            )
        if item.seq < floor:
            continue  # pruned: the archive holds it
        if item.seq == floor and start is not None:
            stored = start.prev_hash
        else:
            stored = result.seen.get(item.seq, "")
        if stored != item.hash:
            raise AuditChainBroken(
                None,
                f"{item.description}: the database has hash {stored[:12] or '(none)'}… at "
                "that seq: the log was rewritten after it was witnessed",
            )
        matched += 1
    return matched
