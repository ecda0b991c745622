"""The leader's side of a zone call: send it, watch it, re-send what was lost.

A call is sent to the zone's queue with a fresh task id and watched (the result
backend for its state, the monitor for the workers' heartbeats). It is re-sent, with
the same op id, when the worker holding it stops answering (killed, cut off), when the
call is in no live worker's hands and no queue has it though the zone has free slots
(the broker lost it in a restart, or its result was lost), or when Celery reports it
failed. Re-sending is safe: reads are reads, ``apply`` is idempotent by op id on the
worker (worker.py), a rollback restores the same snapshot. A ``reboot`` is never sent
twice: a lost one raises HostUnreachable and the engine checks the boot id.

A zone with no live worker makes its calls wait (``wait_for_worker`` seconds, then
HostUnreachable), logging and calling ``on_zone_down`` once per outage (and
``on_zone_back`` when it ends).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from integrations.zones.celeryapp import TASK, make_app, queue_name
from integrations.zones.monitor import ZoneMonitor, ZoneView
from workflows.errors import HostUnreachable

if TYPE_CHECKING:
    from celery import Celery

log = logging.getLogger("patchgate.zones")

NOT_RESENT = frozenset({"reboot"})


@dataclass(frozen=True)
class ZoneOptions:
    broker_url: str
    result_backend: str | None = None
    wait_for_worker: float = 900.0  # seconds a call waits for a live worker of its zone
    lost_after: float = 10.0  # seconds without a heartbeat before a worker counts as gone
    poll: float = 0.5  # seconds between looks at a call's state
    heartbeat: float = 2.0  # seconds between the monitor's polls
    visibility_timeout: float = 3600.0


class ZoneClient:
    def __init__(
        self,
        options: ZoneOptions,
        *,
        on_zone_down: Callable[[str, float], None] | None = None,
        on_zone_back: Callable[[str, float], None] | None = None,
    ) -> None:
        self.options = options
        # Called on the caller's event loop, once per outage: (zone, seconds a host step
        # waits) when a zone with work has no live worker; (zone, seconds it had none)
        # when one is back. The leader turns them into on-call alerts (bot/zone_alerts.py).
        self.on_zone_down = on_zone_down
        self.on_zone_back = on_zone_back
        self._app: Celery = self._make_app()
        self.monitor = ZoneMonitor(
            self._make_app, interval=options.heartbeat, reply_timeout=min(1.0, options.heartbeat)
        )
        self.monitor.start()
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="zone-client")
        self._waiting: Counter[str] = Counter()
        self._in_flight: Counter[str] = Counter()
        self._down_since: dict[str, float] = {}
        self.resent: Counter[str] = Counter()  # zone -> calls re-sent (lost)

    def _make_app(self) -> Celery:
        o = self.options
        return make_app(
            o.broker_url, result_backend=o.result_backend, visibility_timeout=o.visibility_timeout
        )

    def close(self) -> None:
        self.monitor.stop()
        self._pool.shutdown(wait=False)

    def zones(self) -> list[ZoneView]:
        return self.monitor.zones()

    async def _blocking(self, fn: Callable[[], Any]) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn)

    def waiting(self, zone: str) -> int:
        """Host steps waiting now for a live worker of ``zone``."""
        return self._waiting[zone]

    def _count(self, zone: str) -> None:
        self.monitor.count(zone, waiting=self._waiting[zone], in_flight=self._in_flight[zone])

    async def call(
        self, zone: str, op: str, host: Mapping[str, Any], args: Mapping[str, Any]
    ) -> Mapping[str, Any]:
        """The worker's JSON reply to one call (``{"ok": ...}`` or ``{"error": ...}``)."""
        queue = queue_name(zone)
        self.monitor.watch(zone)
        body = {"op": op, "host": dict(host), "args": dict(args)}
        name = str(host.get("name"))
        attempt = 0
        while True:
            await self._wait_for_worker(zone, name)
            attempt += 1
            if attempt > 1 and op in NOT_RESENT:
                raise HostUnreachable(name, f"zone {zone}: the {op} call was lost; not re-sent")
            task_id = uuid.uuid4().hex
            try:
                await self._blocking(functools.partial(self._send, body, queue, task_id))
            except Exception as exc:  # broker down: wait and try again
                log.warning("zone %s: could not send %s for %s: %s", zone, op, name, exc)
                await asyncio.sleep(self.options.heartbeat)
                attempt -= 1
                continue
            self._in_flight[zone] += 1
            self._count(zone)
            try:
                reply = await self._watch(zone, op, name, task_id)
            finally:
                self._in_flight[zone] -= 1
                self._count(zone)
            if reply is not None:
                return reply
            self.resent[zone] += 1
            log.warning(
                "zone %s: %s for %s was lost (task %s); sending it again", zone, op, name, task_id
            )

    async def _watch(self, zone: str, op: str, name: str, task_id: str) -> Mapping[str, Any] | None:
        """The reply, or None when the call is lost."""
        o = self.options
        suspect_since: float | None = None
        pause = 0.02
        while True:
            await asyncio.sleep(pause)
            pause = min(pause * 2, o.poll)
            try:
                state, info = await self._blocking(lambda: self._state(task_id))
            except Exception as exc:  # broker or result store down: keep watching
                log.debug("zone %s: task %s state unreadable: %s", zone, task_id, exc)
                suspect_since = suspect_since or time.monotonic()
                continue
            if state == "SUCCESS" and isinstance(info, Mapping):
                await self._blocking(lambda: self._app.AsyncResult(task_id).forget())
                return info
            if state == "FAILURE":
                log.warning("zone %s: %s for %s failed in Celery: %s", zone, op, name, info)
                return None
            now = time.time()
            view = self.monitor.zone(zone)
            live = view.live(now, o.lost_after)
            holding = [w for w in live if task_id in w.active]
            if holding:
                suspect_since = None
                continue
            if not live:
                await self._wait_for_worker(zone, name)
                suspect_since = None
                continue
            free = any(len(w.active) < w.slots for w in live)
            queued = bool(view.queue_depth)
            if free and not queued:
                suspect_since = suspect_since or time.monotonic()
                if time.monotonic() - suspect_since > o.lost_after:
                    return None
            else:
                suspect_since = None

    def _send(self, body: Mapping[str, Any], queue: str, task_id: str) -> None:
        self._app.send_task(TASK, args=[dict(body)], queue=queue, task_id=task_id)

    def _state(self, task_id: str) -> tuple[str, Any]:
        result = self._app.AsyncResult(task_id)
        return str(result.state), result.info

    async def _wait_for_worker(self, zone: str, name: str) -> None:
        o = self.options
        started = time.monotonic()
        counted = False
        try:
            while True:
                view = self.monitor.zone(zone)
                if view.live(time.time(), o.lost_after):
                    if zone in self._down_since:
                        down = time.monotonic() - self._down_since.pop(zone)
                        log.warning("zone %s: a worker is back after %.0fs", zone, down)
                        if self.on_zone_back is not None:
                            self.on_zone_back(zone, down)
                    return
                if self.monitor.polled_at == 0:  # no look yet: wait for the first one
                    await asyncio.get_running_loop().run_in_executor(
                        None, lambda: self.monitor.wait_for_poll(0, o.heartbeat * 3)
                    )
                    if self.monitor.zone(zone).live(time.time(), o.lost_after):
                        return
                if not counted:
                    counted = True
                    self._waiting[zone] += 1
                    self._count(zone)
                if zone not in self._down_since:
                    self._down_since[zone] = time.monotonic()
                    log.error(
                        "zone %s has no live worker: its hosts wait (up to %.0fs) for one "
                        "(`patchgate worker --zone %s`)",
                        zone,
                        o.wait_for_worker,
                        zone,
                    )
                    if self.on_zone_down is not None:
                        self.on_zone_down(zone, o.wait_for_worker)
                if time.monotonic() - started > o.wait_for_worker:
                    raise HostUnreachable(
                        name, f"zone {zone} had no live worker for {o.wait_for_worker:.0f}s"
                    )
                await asyncio.sleep(min(o.heartbeat, 1.0))
        finally:
            if counted:
                self._waiting[zone] -= 1
                self._count(zone)
