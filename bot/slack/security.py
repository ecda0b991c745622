"""Replay protection: a signed request whose signature was already seen is refused.

Bolt verifies the v0 signature and the 5-minute timestamp window (|now - ts| <= 300 s);
this middleware then refuses a request whose signature was accepted before, before any
listener runs. The database table ``slack_seen_signatures`` is the truth (every
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
import datetime as dt
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import cast

import sqlalchemy as sa
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from sqlalchemy.dialects import postgresql, sqlite

from workflows.db import Database
from workflows.models import SeenSignature
from workflows.ports import Clock

log = logging.getLogger("patchgate.slack")

WINDOW = dt.timedelta(minutes=5)
KEEP = WINDOW * 2
MEMORY = 50_000
PRUNE_EVERY = 60.0  # seconds
MAX_BATCH = 500

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
    ) -> None:
        self.db = db
        self.clock = clock
        self.memory = memory
        self._monotonic = monotonic
        self._seen: OrderedDict[str, float] = OrderedDict()  # signature -> forget after
        self._pending: dict[str, asyncio.Future[bool]] = {}
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

    async def first_sighting(self, signature: str) -> bool:
        """True the first time ``signature`` is seen by any replica; False for a replay."""
        if self.seen_here(signature) or signature in self._pending:
            return False
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending[signature] = future
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
        rows = [{"signature": s, "seen_at": now} for s in batch]
        insert = postgresql.insert if self.db.dialect == "postgresql" else sqlite.insert
        statement = (
            insert(TABLE)
            .values(rows)
            .on_conflict_do_nothing(index_elements=[TABLE.c.signature])
            .returning(TABLE.c.signature)
        )
        try:
            async with self.db.engine.begin() as conn:
                first = set((await conn.execute(statement)).scalars())
                if self._monotonic() >= self._next_prune:
                    self._next_prune = self._monotonic() + PRUNE_EVERY
                    await conn.execute(sa.delete(TABLE).where(TABLE.c.seen_at < now - KEEP))
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


def replay_guard(guard: ReplayGuard) -> Callable[..., Awaitable[BoltResponse | None]]:
    async def middleware(
        req: AsyncBoltRequest, next: Callable[[], Awaitable[BoltResponse]]
    ) -> BoltResponse | None:
        signature = req.headers.get("x-slack-signature", [None])[0]
        if req.mode == "http" and signature and not await guard.first_sighting(signature):
            log.warning("refused a replayed Slack request (signature seen before)")
            return BoltResponse(status=401, body='{"error":"replayed request"}')
        return await next()

    return middleware
