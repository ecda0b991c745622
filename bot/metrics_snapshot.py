"""What ``GET /metrics`` answers: the exposition of the last background refresh.

A scrape never reads the database. A task of the server (:meth:`MetricsSnapshot.run`)
refreshes the gauges from the database every ``PATCHGATE_METRICS_INTERVAL`` seconds (15
by default) and keeps the exposition bytes; a scrape returns them as they are. Fifty
scrapers at once then cost fifty small responses on the event loop, not fifty sets of
aggregate queries competing with Slack's acks for it and for the connection pool.

``patchgate_metrics_refreshed_timestamp_seconds`` says when the snapshot was taken. When
a refresh fails (the database away), scrapes get 503 with the reason until one succeeds
again: a stale snapshot is not passed off as current.

Even a snapshot costs the event loop an HTTP exchange per scrape, and scrapers that ask
back to back (fifty of them made two thousand requests a second) would still crowd out
Slack's acks on the same loop. :class:`Pacer` answers ``/metrics`` and ``/healthz`` at
most ``DEFAULT_RATE`` (20) times a second in all: a request over the rate waits for its
turn (so a client that asks again only after its answer is slowed down, not refused),
and one that would wait more than ``MAX_WAIT`` (2 s) gets 429 after those 2 s. Prometheus
scraping every 15 s stays far below: 20 a second is 300 scrapers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Protocol

from sqlalchemy.exc import SQLAlchemyError

from bot.metrics import Metrics
from workflows.db import Database

log = logging.getLogger("patchgate.metrics")

DEFAULT_INTERVAL = 15.0
FIRST_WAIT = 10.0  # how long a scrape waits for the first snapshot
DEFAULT_RATE = 20.0  # /metrics and /healthz answers per second, all clients together
MAX_WAIT = 2.0  # a request waits this long at most for its turn, else 429


class Leadership(Protocol):
    @property
    def is_leader(self) -> bool: ...

    @property
    def epoch(self) -> int | None: ...


class MetricsSnapshot:
    def __init__(
        self,
        metrics: Metrics,
        db: Database,
        leadership: Leadership,
        *,
        interval: float = DEFAULT_INTERVAL,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.metrics = metrics
        self.db = db
        self.leadership = leadership
        self.interval = interval
        self.wall = wall
        self.body: bytes | None = None
        self.problem: str | None = None
        self.refreshes = 0
        self._ready = asyncio.Event()

    async def refresh(self) -> None:
        """Read the database into the gauges and keep the exposition (one refresh)."""
        lead = self.leadership
        try:
            await self.metrics.refresh(self.db, leader=lead.is_leader, epoch=lead.epoch)
        except (SQLAlchemyError, OSError) as exc:
            log.warning("metrics: cannot read the database (%s)", type(exc).__name__)
            self.problem = f"database unreachable ({type(exc).__name__})"
        else:
            self.metrics.refreshed.set(self.wall())
            self.body, self.problem = self.metrics.exposition(), None
        self.refreshes += 1
        self._ready.set()

    async def run(self) -> None:
        """Refresh now, then every ``interval`` seconds, until cancelled."""
        while True:
            started = time.monotonic()
            await self.refresh()
            await asyncio.sleep(max(0.0, self.interval - (time.monotonic() - started)))

    async def current(self) -> tuple[bytes | None, str | None]:
        """(exposition, None), or (None, why there is none)."""
        try:
            async with asyncio.timeout(FIRST_WAIT):
                await self._ready.wait()
        except TimeoutError:
            return None, "no metrics snapshot yet"
        if self.problem is not None or self.body is None:
            return None, self.problem or "no metrics snapshot yet"
        return self.body, None


class Pacer:
    """At most ``rate`` turns a second; a turn further than ``max_wait`` away is refused."""

    def __init__(self, rate: float = DEFAULT_RATE, *, max_wait: float = MAX_WAIT) -> None:
        self.gap = 1.0 / rate
        self.max_wait = max_wait
        self._next = 0.0

    async def turn(self) -> bool:
        """Wait for this request's turn; False if it is too far away, after waiting
        ``max_wait`` all the same (a client that asks again at once would otherwise
        spin on refusals as fast as the loop answers them)."""
        now = time.monotonic()
        at = max(now, self._next)
        if at - now > self.max_wait:
            await asyncio.sleep(self.max_wait)
            return False
        self._next = at + self.gap
        if at > now:
            await asyncio.sleep(at - now)
        return True
