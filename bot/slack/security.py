"""Replay protection: a signed request whose signature was already seen is refused.

Bolt verifies the v0 signature and the 5-minute timestamp window; this middleware records
each accepted signature in the database (shared by every replica) and refuses a second
request with the same one, before any listener runs. Rows older than the window are
pruned as new ones are written.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Awaitable, Callable

import sqlalchemy as sa
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from sqlalchemy.exc import IntegrityError

from workflows.db import Database, unit_of_work
from workflows.models import SeenSignature
from workflows.ports import Clock

log = logging.getLogger("patchgate.slack")

WINDOW = dt.timedelta(minutes=5)
KEEP = WINDOW * 2


async def first_sighting(db: Database, signature: str, *, now: dt.datetime) -> bool:
    """Record ``signature``; False if it was already recorded (a replay)."""
    try:
        async with unit_of_work(db) as session:
            if await session.get(SeenSignature, signature) is not None:
                return False
            session.add(SeenSignature(signature=signature, seen_at=now))
            await session.execute(
                sa.delete(SeenSignature).where(SeenSignature.seen_at < now - KEEP)
            )
    except IntegrityError:
        return False  # another replica recorded it at the same moment
    return True


def replay_guard(db: Database, clock: Clock) -> Callable[..., Awaitable[BoltResponse | None]]:
    async def middleware(
        req: AsyncBoltRequest, next: Callable[[], Awaitable[BoltResponse]]
    ) -> BoltResponse | None:
        signature = req.headers.get("x-slack-signature", [None])[0]
        if (
            req.mode == "http"
            and signature
            and not await first_sighting(db, signature, now=clock.now())
        ):
            log.warning("refused a replayed Slack request (signature seen before)")
            return BoltResponse(status=401, body='{"error":"replayed request"}')
        return await next()

    return middleware
