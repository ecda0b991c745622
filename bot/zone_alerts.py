"""On-call alerts for zones without a live worker, raised on the leader (issue 24).

The zone client (integrations/zones/client.py) calls :meth:`ZoneAlerts.down` once when a
zone with work has no live worker and :meth:`ZoneAlerts.back` once when one answers
again. An outage that lasts ``alert_after`` seconds becomes a ``zone.alert`` row in the
outbox (delivered to PATCHGATE_ONCALL_CHANNEL like a rollback alert); its end, if it was
alerted, a recovery note. A worker slow to answer the leader's first look, or a missed
heartbeat, stays in the log. The rows are written here, in the leader, so the router
and the workers never touch the database.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from workflows import notify
from workflows.db import Database, unit_of_work
from workflows.outbox import enqueue

log = logging.getLogger("patchgate.zones")


@dataclass
class _Outage:
    id: str
    started: float  # time.monotonic()
    alerted: bool = False
    timer: asyncio.Task[None] | None = None


@dataclass
class ZoneAlerts:
    db: Database
    now: Callable[[], dt.datetime]
    alert_after: float = 30.0
    waiting: Callable[[str], int] = lambda zone: 0
    _outages: dict[str, _Outage] = field(default_factory=dict)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def down(self, zone: str, wait_seconds: float) -> None:
        if zone in self._outages:
            return
        outage = _Outage(id=uuid.uuid4().hex[:12], started=time.monotonic())
        self._outages[zone] = outage
        outage.timer = self._spawn(self._alert_later(zone, outage, wait_seconds))

    def back(self, zone: str, down_seconds: float) -> None:
        outage = self._outages.pop(zone, None)
        if outage is None:
            return
        if outage.timer is not None and not outage.timer.done():
            outage.timer.cancel()
        if not outage.alerted:
            return
        text = (
            f"Zone {zone} has a live worker again after {_span(down_seconds)} "
            "without one: its hosts go on."
        )
        row = notify.zone_alert(
            zone=zone,
            outage=outage.id,
            back=True,
            text=text,
            now=self.now(),
            down_seconds=round(down_seconds, 1),
        )
        self._spawn(self._write(zone, row))

    async def _alert_later(self, zone: str, outage: _Outage, wait_seconds: float) -> None:
        await asyncio.sleep(self.alert_after)
        if self._outages.get(zone) is not outage:
            return
        outage.alerted = True
        waiting = self.waiting(zone)
        text = (
            f"Zone {zone} has no live worker: {waiting} host step(s) wait for one (each up "
            f"to {_span(wait_seconds)}, then it fails as unreachable). Start "
            f"`patchgate worker --zone {zone}` on a machine in the zone, or check its "
            "workers and their broker connection."
        )
        row = notify.zone_alert(
            zone=zone,
            outage=outage.id,
            back=False,
            text=text,
            now=self.now(),
            waiting_hosts=waiting,
            wait_seconds=wait_seconds,
        )
        await self._write(zone, row)

    async def _write(self, zone: str, row: dict[str, Any]) -> None:
        try:
            async with unit_of_work(self.db) as session:
                await enqueue(session, **row)
        except Exception:  # the database is down: the log line and the gauge remain
            log.exception("zone %s: the on-call alert could not be written", zone)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def drain(self) -> None:
        """Wait for the rows being written (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


def _span(seconds: float) -> str:
    whole = round(seconds)
    if whole < 120:
        return f"{whole}s"
    if whole < 7200:
        return f"{whole // 60} min"
    return f"{whole // 3600} h {whole % 3600 // 60} min"
