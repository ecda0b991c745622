"""Every HTTP request from Slack is checked before any listener runs, and refusals are audited.

:func:`check_signature` (called by the Bolt middleware ``bot.slack.guard.HttpGuard`` on
the raw body) refuses missing headers, a timestamp more than 300 s from now (either way;
Slack's rule) and a wrong v0 signature; :class:`ReplayGuard` then refuses a request whose
signature was accepted before. The middleware replaces Bolt's own request verification,
which would refuse the same requests without PatchGate's reasons and audit.

:class:`RefusalAudit` writes ``slack.request.refused`` audit events. Requests that are
not authenticated (forged, stale, replayed, oversized, no headers) are audited at most
once per reason per minute, the event carrying how many were refused since the last one:
anyone can send those, and one audit append each would let them fill the audit log and
queue real clicks behind its lock. Signed requests that are wrong (malformed payload,
unknown action, tampered button value) come from Slack on behalf of a person and are
audited one by one, with that person as the actor.

Replay protection: The database table ``slack_seen_signatures`` is the truth (every
replica writes to it), so a request replayed to another replica is refused too.

Cost per request, which is what ack latency under a burst is made of:

- a signature this process has seen is refused from memory (an LRU of the last
  ``MEMORY`` signatures, each kept for ``KEEP``), without touching the database;
- new signatures are written by one writer task, in batches: every request that arrives
  while a write is in flight joins the next one, which is a single
  ``INSERT … ON CONFLICT DO NOTHING RETURNING signature`` (Core, no ORM) in its own
  transaction. A signature it returns was first seen here; one it does not return was
  recorded by another replica (or by another request of the batch) and is a replay.
  Each request awaits its batch's commit, so its signature is durable before its ack;
- rows older than ``KEEP`` are pruned at most once a minute, in a batch's transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, cast

import sqlalchemy as sa
from slack_sdk.signature import Clock as VerifierClock
from slack_sdk.signature import SignatureVerifier
from sqlalchemy.dialects import postgresql, sqlite

from workflows import audit
from workflows.db import Database, unit_of_work
from workflows.models import SeenSignature
from workflows.ports import Clock

log = logging.getLogger("patchgate.slack")

WINDOW = dt.timedelta(minutes=5)
MAX_SKEW = 300  # seconds between the request's timestamp and now, either way (Slack's rule)
REFUSED = "slack.request.refused"
AUDIT_EVERY = 60.0  # seconds: at most one event per reason for unauthenticated refusals
KEEP = WINDOW * 2
MEMORY = 50_000
PRUNE_EVERY = 60.0  # seconds
MAX_BATCH = 500
# Slack's timestamp is 10 digits and its signature "v0=" + 64 hex digits; anything much
# longer is refused before it is parsed (a 400-digit timestamp is a valid int, and the
# arithmetic on it overflowed a float: a 500)
MAX_TIMESTAMP = 16
MAX_SIGNATURE = 128

TABLE = cast(sa.Table, SeenSignature.__table__)


class ReplayGuard:
    """First sightings of request signatures, shared with other replicas via the database."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        *,
        memory: int = MEMORY,
        monotonic: Callable[[], float] = time.monotonic,
        one_writer: Callable[[], AbstractAsyncContextManager[None]] | None = None,
    ) -> None:
        self.db = db
        self.one_writer = one_writer or contextlib.nullcontext
        self.clock = clock
        self.memory = memory
        self._monotonic = monotonic
        self._seen: OrderedDict[str, float] = OrderedDict()  # signature -> forget after
        self._pending: dict[str, asyncio.Future[bool]] = {}
        self._journal: dict[str, tuple[str, str]] = {}  # signature -> (kind, body), pending
        self._writer: asyncio.Task[None] | None = None
        self._next_prune = 0.0
        self.batches = 0  # written so far (for tests and the benchmark)

    def _remember(self, signature: str) -> None:
        now = self._monotonic()
        self._seen[signature] = now + KEEP.total_seconds()
        self._seen.move_to_end(signature)
        while self._seen:
            oldest, until = next(iter(self._seen.items()))
            if until > now and len(self._seen) <= self.memory:
                break
            del self._seen[oldest]

    def seen_here(self, signature: str) -> bool:
        until = self._seen.get(signature)
        return until is not None and until > self._monotonic()

    async def first_sighting(self, signature: str, journal: tuple[str, str] | None = None) -> bool:
        """True the first time ``signature`` is seen by any replica; False for a replay.

        ``journal`` (kind, body): the request is acted on after its ack; its row carries
        them, written in the same batched insert (durable before this returns True)."""
        if self.seen_here(signature) or signature in self._pending:
            return False
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending[signature] = future
        if journal is not None:
            self._journal[signature] = journal
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_batches(), name="replay-guard")
        return await future

    async def _write_batches(self) -> None:
        try:
            while self._pending:
                await asyncio.sleep(0)  # let requests of this loop iteration join the batch
                batch = dict(list(self._pending.items())[:MAX_BATCH])
                for signature in batch:
                    del self._pending[signature]
                await self._write(batch)
        finally:
            self._writer = None

    async def _write(self, batch: dict[str, asyncio.Future[bool]]) -> None:
        now = self.clock.now()
        rows = []
        for s in batch:
            kind, body = self._journal.pop(s, (None, None))
            rows.append({"signature": s, "seen_at": now, "kind": kind, "body": body})
        insert = postgresql.insert if self.db.dialect == "postgresql" else sqlite.insert
        statement = (
            insert(TABLE)
            .values(rows)
            .on_conflict_do_nothing(index_elements=[TABLE.c.signature])
            .returning(TABLE.c.signature)
        )
        try:
            async with self.one_writer(), self.db.engine.begin() as conn:
                first = set((await conn.execute(statement)).scalars())
                if self._monotonic() >= self._next_prune:
                    self._next_prune = self._monotonic() + PRUNE_EVERY
                    await conn.execute(
                        sa.delete(TABLE).where(
                            TABLE.c.seen_at < now - KEEP,
                            # journaled requests are kept until processed
                            sa.or_(TABLE.c.kind.is_(None), TABLE.c.processed_at.is_not(None)),
                        )
                    )
        except BaseException as exc:
            for future in batch.values():
                if not future.done():
                    future.set_exception(exc if isinstance(exc, Exception) else RuntimeError())
            if not isinstance(exc, Exception):
                raise
            return
        self.batches += 1
        for signature, future in batch.items():
            self._remember(signature)
            if not future.done():
                future.set_result(signature in first)


# --- checking a request and auditing refusals -------------------------------------------------


@dataclass(frozen=True)
class Refusal:
    status: int
    reason: str  # short, stable: missing_headers, stale_timestamp, bad_signature, replay, …
    detail: str


class _At(VerifierClock):
    """The ``slack_sdk.signature`` clock reading a fixed time (``check_signature``'s now)."""

    def __init__(self, now: float) -> None:
        self._now = now

    def now(self) -> float:
        return self._now


def check_signature(
    headers: Mapping[str, str], body: bytes, *, secret: str, now: float
) -> Refusal | None:
    """None if ``body`` carries a valid v0 signature made within 300 s of ``now``.

    ``slack_sdk``'s ``SignatureVerifier`` checks the HMAC and the window; the checks
    before it only tell why a request is refused (the audited reasons)."""
    timestamp = headers.get("X-Slack-Request-Timestamp", "")
    signature = headers.get("X-Slack-Signature", "")
    if not timestamp or not signature:
        missing = [h for h, v in (("timestamp", timestamp), ("signature", signature)) if not v]
        return Refusal(401, "missing_headers", f"no {' or '.join(missing)} header")
    if (
        len(timestamp) > MAX_TIMESTAMP
        or len(signature) > MAX_SIGNATURE
        or not signature.isascii()  # hmac.compare_digest raises TypeError on other text
    ):
        sizes = f"{len(timestamp)} and {len(signature)} characters"
        return Refusal(400, "malformed_headers", f"timestamp and signature of {sizes}")
    if not (timestamp.isascii() and timestamp.isdigit()):
        return Refusal(401, "stale_timestamp", "the timestamp is not a number")
    skew = now - int(timestamp)
    if abs(skew) > MAX_SKEW:
        when = "old" if skew > 0 else "in the future"
        return Refusal(401, "stale_timestamp", f"timestamp {abs(skew):.0f}s {when}")
    try:
        valid = bool(secret) and SignatureVerifier(secret, clock=_At(now)).is_valid(
            body, timestamp, signature
        )
    except UnicodeDecodeError:  # the verifier signs text: a body that is not UTF-8
        valid = False
    if not valid:
        return Refusal(401, "bad_signature", "the signature does not match")
    return None


class RefusalAudit:
    """``slack.request.refused`` audit events (see the module docstring for the rate)."""

    def __init__(
        self, db: Database, clock: Clock, *, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.db = db
        self.clock = clock
        self._monotonic = monotonic
        self._next: dict[str, float] = {}
        self._unwritten: Counter[str] = Counter()

    async def unauthenticated(self, refusal: Refusal) -> None:
        """Count it; write an event if none was written for this reason in the last minute."""
        log.warning("refused a Slack request: %s (%s)", refusal.reason, refusal.detail)
        self._unwritten[refusal.reason] += 1
        now = self._monotonic()
        if now < self._next.get(refusal.reason, 0.0):
            return
        self._next[refusal.reason] = now + AUDIT_EVERY
        count = self._unwritten.pop(refusal.reason)
        data = {"reason": refusal.reason, "detail": refusal.detail, "count": count}
        await self._write(data, actor=None)

    async def signed(self, reason: str, detail: str, *, user: str | None) -> None:
        """A signed request that asked for something PatchGate cannot do: one event."""
        log.warning("refused a signed Slack request from %s: %s (%s)", user, reason, detail)
        await self._write({"reason": reason, "detail": detail, "count": 1}, actor=user)

    async def _write(self, data: dict[str, Any], *, actor: str | None) -> None:
        async with unit_of_work(self.db) as session:
            await audit.append(
                session,
                kind=REFUSED,
                data={**data, "source": "slack"},
                at=self.clock.now(),
                actor=actor,
            )
