"""The leader's view of the zones: live workers, their heartbeats, queue depth.

A thread asks every worker, through Celery's remote control (``patchgate_status``, a
broadcast both Redis and RabbitMQ carry), which zone it serves and which calls it is
running; a reply is the worker's heartbeat. It also reads each known zone's queue
depth (a passive queue declare). Readers get an immutable snapshot.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from integrations.zones.celeryapp import STATUS_COMMAND, queue_name

if TYPE_CHECKING:
    from celery import Celery

log = logging.getLogger("patchgate.zones")


@dataclass(frozen=True)
class WorkerView:
    name: str
    zone: str
    active: frozenset[str]
    slots: int
    last_seen: float  # time.time()


@dataclass(frozen=True)
class ZoneView:
    zone: str
    workers: tuple[WorkerView, ...] = ()
    queue_depth: int | None = None
    last_heartbeat: float | None = None
    waiting_hosts: int = 0  # calls waiting for a worker of this zone
    in_flight: int = 0  # calls sent and not yet answered

    def live(self, now: float, lost_after: float) -> tuple[WorkerView, ...]:
        return tuple(w for w in self.workers if now - w.last_seen <= lost_after)


@dataclass
class _State:
    workers: dict[str, WorkerView] = field(default_factory=dict)
    depth: dict[str, int | None] = field(default_factory=dict)
    polled_at: float = 0.0
    broker_ok: bool = True


class ZoneMonitor:
    def __init__(
        self,
        app_factory: Callable[[], Celery],
        *,
        interval: float = 2.0,
        reply_timeout: float = 1.0,
        forget_after: float = 3600.0,
    ) -> None:
        self._app_factory = app_factory
        self.interval = interval
        self.reply_timeout = reply_timeout
        self.forget_after = forget_after
        self._state = _State()
        self._zones: set[str] = set()
        self._counts: dict[str, tuple[int, int]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._polled = threading.Condition()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="zone-monitor", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def watch(self, zone: str) -> None:
        with self._lock:
            self._zones.add(zone)

    def count(self, zone: str, *, waiting: int, in_flight: int) -> None:
        with self._lock:
            self._counts[zone] = (waiting, in_flight)

    @property
    def polled_at(self) -> float:
        return self._state.polled_at

    @property
    def broker_ok(self) -> bool:
        return self._state.broker_ok

    def zones(self) -> list[ZoneView]:
        with self._lock:
            state = self._state
            names = set(self._zones) | {w.zone for w in state.workers.values()}
            counts = dict(self._counts)
        views = []
        for zone in sorted(names):
            workers = tuple(w for w in state.workers.values() if w.zone == zone)
            waiting, in_flight = counts.get(zone, (0, 0))
            views.append(
                ZoneView(
                    zone=zone,
                    workers=workers,
                    queue_depth=state.depth.get(zone),
                    last_heartbeat=max((w.last_seen for w in workers), default=None),
                    waiting_hosts=waiting,
                    in_flight=in_flight,
                )
            )
        return views

    def zone(self, zone: str) -> ZoneView:
        for view in self.zones():
            if view.zone == zone:
                return view
        return ZoneView(zone=zone)

    def wait_for_poll(self, after: float, timeout: float) -> None:
        with self._polled:
            self._polled.wait_for(lambda: self._state.polled_at > after, timeout=timeout)

    # --- the thread -------------------------------------------------------------------------

    def _run(self) -> None:
        app = self._app_factory()
        while not self._stop.is_set():
            try:
                self._poll(app)
            except Exception:  # the loop must survive a broker outage
                log.warning("zone monitor: broker unreachable", exc_info=log.isEnabledFor(10))
                with self._lock:
                    self._state.broker_ok = False
            with self._polled:
                self._polled.notify_all()
            self._stop.wait(self.interval)

    def _poll(self, app: Celery) -> None:
        now = time.time()
        with self._lock:
            workers = {
                n: w
                for n, w in self._state.workers.items()
                if now - w.last_seen < self.forget_after
            }
            zones = set(self._zones)
        seen, depth = look(app, zones, reply_timeout=self.reply_timeout)
        workers.update(seen)
        with self._lock:
            self._state = _State(workers=workers, depth=depth, polled_at=now, broker_ok=True)


def look(
    app: Celery, zones: set[str], *, reply_timeout: float = 1.0
) -> tuple[dict[str, WorkerView], dict[str, int | None]]:
    """One look at the broker: the workers that answered and each zone's queue depth
    (``zones`` and every zone a worker serves)."""
    replies: list[dict[str, Any]] = (
        app.control.broadcast(STATUS_COMMAND, reply=True, timeout=reply_timeout) or []
    )
    now = time.time()
    workers: dict[str, WorkerView] = {}
    zones = set(zones)
    for reply in replies:
        for name, data in reply.items():
            if not isinstance(data, dict) or "zone" not in data:
                continue
            workers[name] = WorkerView(
                name=name,
                zone=str(data["zone"]),
                active=frozenset(str(t) for t in data.get("active", ())),
                slots=int(data.get("slots", 1)),
                last_seen=now,
            )
            zones.add(str(data["zone"]))
    return workers, {zone: _depth(app, zone) for zone in zones}


def _depth(app: Celery, zone: str) -> int | None:
    try:
        with app.connection_for_read() as conn:
            declared = conn.default_channel.queue_declare(queue=queue_name(zone), passive=True)
            return int(declared.message_count)
    except Exception:  # no such queue yet (nothing sent, no worker): nothing waits in it
        return 0
