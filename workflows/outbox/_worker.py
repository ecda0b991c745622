"""The delivery loop: the leader's worker and the deliverer protocol adapters implement.

Claiming is a short transaction; delivery happens outside any transaction; the result is
written in a new one. A crash between claiming and finishing leaves the row leased; once
the lease expires another worker delivers it. Such a row may thus be delivered twice when
the first attempt landed but its result was lost: deliverers look the key up before acting
again (Slack metadata, Jira labels).

``hook`` (optional, the crash harness's; see ``bot/cli/serve.py: step_hook``) is called with
``outbox.claimed`` once per row after the claim committed, and with ``outbox.returned``
after a delivery succeeded and before its result is recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import random
from collections.abc import Callable, Mapping
from typing import Protocol, runtime_checkable

from workflows.db import Database, unit_of_work
from workflows.errors import PermanentDeliveryError, TransientDeliveryError
from workflows.outbox._lease import (
    DeliveryItem,
    backoff_delay,
    claim,
    record_outcome,
    unrouted_topics,
)
from workflows.outbox._rows import dead_reason, short_error
from workflows.ports import Delivery

log = logging.getLogger("patchgate.outbox")


class Deliverer(Protocol):
    async def deliver(self, item: DeliveryItem) -> Delivery:
        """Deliver, or raise TransientDeliveryError / PermanentDeliveryError.

        Any other exception counts as transient.
        """
        ...


@runtime_checkable
class DeadLetterListener(Protocol):
    """A deliverer that wants to hear when one of its rows went dead (e.g. to tell the
    person who asked for it). Called after the dead letter is committed; an error it
    raises is logged and changes nothing (the row stays dead, ``outbox list`` shows it)."""

    async def dead_lettered(self, item: DeliveryItem, error: str) -> None: ...


class OutboxWorker:
    """Claims due rows, delivers them through the topic's deliverer, records the outcome.

    One pass claims up to ``limit`` rows (at most one per rollout and topic, by the ordering rule)
    and delivers them concurrently. ``lease_seconds`` must exceed the longest a delivery
    can take (the deliverers' own timeouts), or another worker may take the row over.
    ``owner`` names this worker in leases (e.g. host:pid:epoch); ``clock`` gives "now".
    ``orphan_grace_seconds`` bounds how long a child waits for a parent that has not been
    queued (default 14 days: a rollout held by a freeze posts its parent message only when
    the freeze is lifted, and freezes last days).
    """

    def __init__(
        self,
        db: Database,
        deliverers: Mapping[str, Deliverer],
        *,
        clock: Callable[[], dt.datetime],
        owner: str,
        lease_seconds: float = 60,
        max_attempts: int = 12,
        base_backoff: float = 2.0,
        max_backoff: float = 600,
        rng: random.Random | None = None,
        hook: Callable[[str], None] | None = None,
        orphan_grace_seconds: float = 14 * 24 * 3600,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.db = db
        self.deliverers = dict(deliverers)
        self.clock = clock
        self.owner = owner
        self.lease = dt.timedelta(seconds=lease_seconds)
        self.max_attempts = max_attempts
        self.base_backoff = base_backoff
        self.max_backoff = max_backoff
        self.rng = rng or random.Random()
        self._hook = hook or (lambda step: None)
        self.orphan_grace = dt.timedelta(seconds=orphan_grace_seconds)
        self._unrouted_logged: set[str] = set()

    # -- the loop ---------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event, interval: float = 1.0) -> None:
        """Deliver until ``stop`` is set; sleeps ``interval`` when there is nothing to do."""
        while not stop.is_set():
            busy = False
            try:
                busy = await self.run_once() > 0
            except Exception:
                log.exception(
                    "outbox worker %s: pass failed; retrying in %ss", self.owner, interval
                )
            if busy:
                await asyncio.sleep(0)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval)

    async def run_once(self, limit: int = 50) -> int:
        """One pass: claim up to ``limit`` rows, deliver them concurrently. Returns how many
        were delivered."""
        claimed = await self._claim(limit)
        if not claimed:
            return 0
        for _ in claimed:
            self._hook("outbox.claimed")
        outcomes = await asyncio.gather(
            *(self._deliver_one(item) for item in claimed), return_exceptions=True
        )
        delivered = 0
        for item, outcome in zip(claimed, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                if isinstance(outcome, asyncio.CancelledError):
                    raise outcome
                # Recording the outcome failed (database trouble): the row stays leased
                # and is tried again once its lease expires.
                log.error(
                    "outbox %s: could not record the delivery outcome",
                    item.key,
                    exc_info=outcome,
                )
            else:
                delivered += outcome
        return delivered

    async def _claim(self, limit: int) -> list[DeliveryItem]:
        now = self.clock()
        async with unit_of_work(self.db) as session:
            for topic in await unrouted_topics(session, topics=self.deliverers):
                if topic not in self._unrouted_logged:
                    self._unrouted_logged.add(topic)
                    log.warning(
                        "outbox: no deliverer registered for topic %r; its rows stay pending",
                        topic,
                    )
            return await claim(
                session,
                topics=self.deliverers,
                dialect=self.db.dialect,
                owner=self.owner,
                now=now,
                lease=self.lease,
                limit=limit,
                orphan_grace=self.orphan_grace,
            )

    # -- delivering and recording -------------------------------------------------------------

    async def _deliver_one(self, item: DeliveryItem) -> int:
        deliverer = self.deliverers[item.topic]
        try:
            delivery = await deliverer.deliver(item)
        except PermanentDeliveryError as exc:
            log.info("outbox %s (%s): permanent failure: %s", item.key, item.topic, exc)
            await self._finish(item, error=short_error(str(exc)), permanent=True)
            return 0
        except TransientDeliveryError as exc:
            log.info("outbox %s (%s): transient failure: %s", item.key, item.topic, exc)
            await self._finish(item, error=short_error(str(exc)), retry_after=exc.retry_after)
            return 0
        except Exception as exc:
            log.warning(
                "outbox %s (%s): unexpected error, will retry", item.key, item.topic, exc_info=True
            )
            await self._finish(item, error=short_error(exc))
            return 0
        self._hook("outbox.returned")
        return 1 if await self._finish(item, delivery=delivery) else 0

    async def _told_dead(self, item: DeliveryItem, error: str) -> None:
        deliverer = self.deliverers[item.topic]
        if not isinstance(deliverer, DeadLetterListener):
            return
        try:
            await deliverer.dead_lettered(item, error)
        except Exception:
            log.warning(
                "outbox %s (%s): the deliverer could not be told the row is dead",
                item.key,
                item.topic,
                exc_info=True,
            )

    async def _finish(
        self,
        item: DeliveryItem,
        *,
        delivery: Delivery | None = None,
        error: str | None = None,
        permanent: bool = False,
        retry_after: float | None = None,
    ) -> bool:
        """Record one attempt's outcome, if this worker still holds the row; True if
        delivered."""
        now = self.clock()
        async with unit_of_work(self.db) as session:
            outcome = await record_outcome(
                session,
                item=item,
                owner=self.owner,
                now=now,
                delivery=delivery,
                error=error,
                permanent=permanent,
                retry_after=retry_after,
                max_attempts=self.max_attempts,
                backoff=self._backoff,
            )
            reason = await dead_reason(session, item_id=item.id) if outcome == "dead" else None
        if reason is not None:
            await self._told_dead(item, reason)
        return outcome == "delivered"

    def _backoff(self, attempts: int) -> float:
        return backoff_delay(attempts, base=self.base_backoff, cap=self.max_backoff, rng=self.rng)
