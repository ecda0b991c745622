"""The worker side: one Celery task runs one host step through the zone's executor.

``ZoneWorker.run`` decodes a call, runs it on the worker's own event loop (a thread:
Celery's thread pool calls in from many threads), and encodes the port value or the
executor error as JSON. ``apply`` is idempotent by op id here, whatever the executor:
the op's status on the host is read first and returned when the op already ran (a
message redelivered after its worker died, or re-sent by the leader), so a host is
never patched twice for one op; a start refused because the op exists is answered
with its status too. The ``patchgate_status`` remote-control command tells the
leader which zone this worker serves and which calls it is running.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from integrations.zones.celeryapp import STATUS_COMMAND, TASK
from integrations.zones.wire import decode_host, encode_error, encode_value
from workflows.errors import ExecutorError, HostUnreachable
from workflows.ports import Executor, HealthChecker, InventoryHost

if TYPE_CHECKING:
    from celery import Celery

log = logging.getLogger("patchgate.zones")


class ZoneWorker:
    def __init__(
        self,
        executor: Executor,
        health: HealthChecker,
        *,
        zone: str,
        slots: int,
        pause: tuple[str, float] | None = None,
        step_log: Path | None = None,
    ) -> None:
        self.executor = executor
        self.health = health
        self.zone = zone
        self.slots = slots
        # Test-only: (point, seconds) to pause at "before_apply" or "after_apply", with a
        # line in ``step_log`` first, so a test can SIGKILL the worker right there.
        self.pause = pause
        self.step_log = step_log
        self.active: dict[str, str] = {}  # task id -> "op host"
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()

    # --- the task ----------------------------------------------------------------------------

    def run(self, task_id: str, call: Mapping[str, Any]) -> dict[str, Any]:
        op = str(call.get("op"))
        host = decode_host(call["host"])
        args = dict(call.get("args") or {})
        with self._lock:
            self.active[task_id] = f"{op} {host.name}"
        started = time.monotonic()
        try:
            future = asyncio.run_coroutine_threadsafe(self._dispatch(op, host, args), self._loop)
            value = future.result()
            self._at("after_apply" if op == "apply" else "", host.name)
            reply: dict[str, Any] = {"ok": encode_value(value)}
        except ExecutorError as exc:
            reply = {"error": encode_error(exc)}
        finally:
            with self._lock:
                self.active.pop(task_id, None)
        log.info(
            "zone %s: %s on %s in %.1fs: %s",
            self.zone,
            op,
            host.name,
            time.monotonic() - started,
            "error" if "error" in reply else "ok",
        )
        return reply

    def status(self) -> dict[str, Any]:
        # Test-only "status" pause: the consumer's thread is held in its first status
        # reply (one per step log), deaf to the broker as after a bad reconnect.
        if self.pause is not None and self.pause[0] == "status" and not self._paused("status"):
            self._at("status", self.zone)
        with self._lock:
            return {
                "zone": self.zone,
                "active": sorted(self.active),
                "slots": self.slots,
                "pid": os.getpid(),
            }

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)

    def _paused(self, point: str) -> bool:
        log_file = self.step_log
        return (
            log_file is not None
            and log_file.exists()
            and f"worker.{point} " in log_file.read_text(errors="replace")
        )

    # --- the steps ---------------------------------------------------------------------------

    async def _dispatch(self, op: str, host: InventoryHost, args: dict[str, Any]) -> Any:
        ex = self.executor
        if op == "apply":
            return await self._apply(host, dict(args["patchset"]), str(args["op_id"]))
        if op == "apply_status":
            return await ex.apply_status(host, op_id=str(args["op_id"]))
        if op == "facts":
            return await ex.facts(host)
        if op == "list_upgradable":
            return await ex.list_upgradable(host)
        if op == "simulate":
            return await ex.simulate(host, list(args["packages"]))
        if op == "installed":
            return await ex.installed(host, list(args["packages"]))
        if op == "preflight":
            return await ex.preflight(host, dict(args["patchset"]))
        if op == "rollback":
            return await ex.rollback(host, dict(args["snapshot"]))
        if op == "reboot_required":
            return await ex.reboot_required(host)
        if op == "host_advisories":
            return await ex.host_advisories(host)
        if op == "reboot":
            return await ex.reboot(host)
        if op == "health":
            from workflows.plans import HealthCheck

            checks = [HealthCheck.model_validate(c) for c in args["checks"]]
            return await self.health.check(host, checks)
        raise ExecutorError(host.name, f"unknown zone operation {op!r}")

    async def _apply(self, host: InventoryHost, patchset: dict[str, str], op_id: str) -> Any:
        done = await self.executor.apply_status(host, op_id=op_id)
        if done is not None:
            log.warning(
                "zone %s: %s: op %s already ran; its result is sent", self.zone, host.name, op_id
            )
            return done
        self._at("before_apply", host.name)
        try:
            return await self.executor.apply(host, patchset, op_id=op_id)
        except HostUnreachable:
            raise
        except ExecutorError:
            # Refused because the op exists (another worker started it meanwhile)?
            done = await self.executor.apply_status(host, op_id=op_id)
            if done is None:
                raise
            return done

    def _at(self, point: str, subject: str) -> None:
        if self.pause is None or self.pause[0] != point:
            return
        if self.step_log is not None:
            with self.step_log.open("a") as out:
                out.write(f"worker.{point} {subject} {os.getpid()}\n")
        time.sleep(self.pause[1])


class SelfCheck:
    """A worker's look at itself through the broker, as the leader sees it.

    Celery's consumer can come back from a broker outage connected but deaf: no
    remote-control replies and no calls taken, with nothing in its log (seen with Celery
    5.7.0's thread pool on RabbitMQ). The leader then counts the zone as having no
    worker and its hosts wait, then fail. Every ``interval`` seconds, once the worker is
    ready, this asks the worker's own ``patchgate_status`` over a connection of its own
    (``look``: True answered, False the broker answered but the worker did not, None the
    broker is unreachable, which the consumer's own reconnecting covers); after
    ``misses`` unanswered looks in a row it calls ``restart`` (the worker starts afresh:
    the broker re-delivers what it held, the leader re-sends what was lost). ``stopped``
    is set when the worker shuts down: its consumer stops answering then, and the looks
    end without a restart."""

    def __init__(
        self,
        look: Callable[[], bool | None],
        restart: Callable[[str], None],
        *,
        interval: float,
        misses: int = 3,
    ) -> None:
        self.look = look
        self.restart = restart
        self.interval = interval
        self.misses = misses
        self.missed = 0
        self.armed = threading.Event()
        self.stopped = threading.Event()

    def step(self) -> bool:
        """One look; True when it asked for a restart."""
        answered = self.look()
        if answered is None or answered:
            self.missed = 0
            return False
        self.missed += 1
        log.warning(
            "zone worker: no answer to its own status request through the broker (%d of %d)",
            self.missed,
            self.misses,
        )
        if self.missed < self.misses:
            return False
        self.missed = 0
        if self.stopped.is_set():  # shutting down: a consumer that stopped is expected
            return True
        self.restart(
            f"the worker's consumer did not answer through the broker for "
            f"{self.misses} looks, {self.interval:.0f}s apart"
        )
        return True

    def run(self) -> None:
        self.armed.wait()
        while not self.stopped.wait(self.interval):
            if self.step():
                return

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, name="zone-self-check", daemon=True)
        thread.start()
        return thread


def answers(app: Celery, name: str, *, timeout: float) -> bool | None:
    """Whether worker ``name`` answers ``patchgate_status`` through ``app``'s broker
    (None: the broker itself is unreachable)."""
    try:
        replies = app.control.broadcast(
            STATUS_COMMAND, reply=True, timeout=timeout, destination=[name]
        )
    except Exception as exc:  # broker down: the consumer's own reconnecting covers it
        log.debug("zone worker self-check: broker unreachable: %s", exc)
        return None
    return any(name in reply for reply in replies or ())


def register(app: Celery, worker: ZoneWorker) -> None:
    """The task and the status command, on this worker's app (before it starts)."""
    from celery.worker.control import inspect_command

    @app.task(name=TASK, bind=True, acks_late=True, reject_on_worker_lost=True)  # type: ignore[untyped-decorator]
    def run(task: Any, call: dict[str, Any]) -> dict[str, Any]:
        return worker.run(str(task.request.id), call)

    @inspect_command(name=STATUS_COMMAND)  # type: ignore[untyped-decorator]
    def status(state: Any) -> dict[str, Any]:
        return worker.status()

    del run, status
