"""CLI group: serve — the long-running process.

``patchgate serve`` checks that the schema is at the latest migration (it never
migrates: that is ``patchgate db upgrade``'s job), starts the HTTP server, and then
loops: try to become leader; while leader, run the engine and the outbox worker with
the lock's epoch; when leadership is lost, stop them at once and stand by again.

SIGTERM / SIGINT: stop taking new work, let in-flight work finish (bounded by
PATCHGATE_SHUTDOWN_GRACE seconds), release the lock, exit 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import logging
import signal
import sys
from typing import Any

import sqlalchemy as sa
from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from bot import migrate
from bot.app import Runtime, build_api, create_app
from bot.backends import backend_catalog, close_backends, keep_loading
from bot.cli.common import command
from bot.heap import freeze_startup_heap, tune_collector
from bot.leader import LeaderLock, leader_lock
from bot.metrics import Metrics, package_compare
from bot.refresh import RefreshDeps
from bot.scheduler import (
    SchedulerDeps,
    build_scheduler,
    register_jobs,
    register_refresh_jobs,
    request_rebuild,
)
from bot.server import (
    ServerDeps,
    SocketMode,
    build_metrics_app,
    build_web_app,
    start_server,
)
from bot.settings import Settings
from bot.stephook import step_hook
from bot.witness import check_audit_settings, register_witness, witness_deps
from bot.zone_metrics import zone_views
from integrations.advisories import load_feed
from integrations.advisories.assessor import FeedAssessor
from integrations.inventory.backend_source import ToolInventory
from workflows.db import Database, unit_of_work
from workflows.engine import Engine, EngineDeps
from workflows.errors import StaleLeader
from workflows.models import OutboxItem
from workflows.outbox import OutboxWorker
from workflows.plans import PatchPlan, load_plans
from workflows.schedule import Schedules

log = logging.getLogger("patchgate.serve")


async def schema_problem(settings: Settings) -> str | None:
    """One line saying why ``serve`` cannot run on this database's schema, or None."""
    try:
        revision = await asyncio.to_thread(migrate.current, settings.database)
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        return f"cannot reach the database ({reason})"
    heads = await asyncio.to_thread(migrate.heads)
    if revision in heads:
        return None
    where = "has no PatchGate schema" if revision is None else f"is at revision {revision}"
    return (
        f"the database {where}, not at the latest ({', '.join(heads)}): "
        "run `patchgate db upgrade` first"
    )


RELEASE_LEASES_TIMEOUT = 10.0  # seconds


async def free_earlier_leases(
    db: Database, *, owner: str, within: float = RELEASE_LEASES_TIMEOUT
) -> int | None:
    """:func:`release_earlier_leases` at takeover, bounded: the heartbeat that notices a
    database that stopped answering is not running yet. None if it failed or took too
    long (the worker still takes those rows once their leases end)."""
    try:
        async with asyncio.timeout(within):
            freed = await release_earlier_leases(db, owner=owner)
    except (SQLAlchemyError, TimeoutError) as exc:
        reason = str(exc) or type(exc).__name__
        log.warning("could not free an earlier leader's outbox leases (%s)", reason)
        return None
    if freed:
        log.info("freed %d outbox row(s) an earlier leader had claimed", freed)
    return freed


async def release_earlier_leases(db: Database, *, owner: str) -> int:
    """Free the outbox rows an earlier leader had claimed (it died or lost the lock
    mid-delivery): the new leader delivers them now instead of after their lease runs
    out, which held the rollout's later messages back for up to a minute after a crash.
    Safe because only the leader delivers, an earlier leader's result is refused once
    its lease is gone, and deliverers look a row's key up before acting again. Returns
    how many rows were freed."""
    async with unit_of_work(db) as session:
        result = await session.execute(
            sa.update(OutboxItem)
            .where(
                OutboxItem.state == "pending",
                OutboxItem.lease_owner.is_not(None),
                OutboxItem.lease_owner != owner,
            )
            .values(lease_owner=None, lease_until=None)
        )
    return int(getattr(result, "rowcount", 0) or 0)


class Server:
    """The serve loop: leadership, and the leader's work while it lasts."""

    def __init__(self, runtime: Runtime, lock: LeaderLock) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        self.lock = lock
        self.shutdown = asyncio.Event()
        self._lost = asyncio.Event()
        self._engine: Engine | None = None  # the latest engine this process led with
        self._hook = step_hook(self.settings)  # the crash harness's (test-only settings)
        # The backends plans are checked against and the engine works through (issue 19).
        self.backends = backend_catalog(self.settings, runtime.executor)
        if isinstance(runtime.inventory, ToolInventory):  # backend: inventory entries
            runtime.inventory.backends = self.backends

    def last_tick(self) -> float | None:
        """When this process's engine last finished a tick (Unix time), for /metrics."""
        return None if self._engine is None else self._engine.last_tick_at

    def request_shutdown(self, signame: str) -> None:
        if not self.shutdown.is_set():
            log.info("%s received: finishing in-flight work, then exiting", signame)
        self.shutdown.set()

    def _plans(self) -> dict[str, PatchPlan]:
        """The plans directory, read by the leader at takeover and on `plan reload`."""
        plans = load_plans(self.settings.plans_dir, self.backends)
        return {name: loaded.plan for name, loaded in plans.items()}

    async def _on_lost(self, reason: str) -> None:
        self._lost.set()

    async def run(self) -> None:
        loading = asyncio.create_task(keep_loading(self.runtime.inventory, self.shutdown))
        try:
            await self._run()
        finally:
            await _cancel([loading])

    async def _run(self) -> None:
        standing_by_logged = False
        while not self.shutdown.is_set():
            try:
                epoch = await self.lock.acquire()
            except (SQLAlchemyError, OSError) as exc:
                log.warning("could not take the leader lock (%s); will retry", exc)
                epoch = None
            if epoch is None:
                if not standing_by_logged:
                    why = self.lock.refusal or "another process holds the leader lock"
                    log.info("standing by: %s", why)
                    standing_by_logged = True
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.shutdown.wait(), timeout=self.lock.interval)
                continue
            standing_by_logged = False
            log.info("leader acquired with epoch %s (holder %s)", epoch, self.lock.holder)
            await self._lead(epoch)
        await self.lock.release()

    def _assessor(self) -> FeedAssessor:
        """The refresh before pinning matches the advisory feeds, as `assess --refresh`."""
        feed = load_feed(
            osv_dir=self.settings.advisories_osv_dir, kev_file=self.settings.advisories_kev_file
        )
        return FeedAssessor(self.runtime.executor, feed)

    async def _lead(self, epoch: int) -> None:
        rt = self.runtime
        self._lost.clear()
        work_stop = asyncio.Event()
        scheduler = build_scheduler()
        wakes = SchedulerDeps(db=rt.db, clock=rt.clock, wake=lambda: engine.wake())
        assessor = self._assessor()
        engine = Engine(
            EngineDeps(
                db=rt.db,
                executor=rt.executor,
                health=rt.health,
                inventory=rt.inventory,
                clock=rt.clock,
                concurrency=self.settings.ssh_concurrency,
                assessment_max_age=dt.timedelta(hours=self.settings.facts_max_age_hours),
                assessor=assessor,
                known_exploited=assessor.feed.known_exploited,  # the tools' CVEs too
                refresh_timeout=self.settings.assessment_refresh_timeout,
                step_retry_limit=self.settings.engine_step_retries,
                backends=self.backends,
                give_way=rt.slack.guard.quiet if rt.slack is not None else None,
                schedule=Schedules(
                    plans=self._plans,
                    calendar=self.settings.blackout_calendar,
                    default_zone=self.settings.timezone,
                    on_change=lambda: request_rebuild(scheduler, wakes),
                ),
            ),
            epoch=epoch,
            hook=self._hook,
            owner=f"{self.lock.holder}:{epoch}",
        )
        self._engine = engine
        owner = f"{self.lock.holder}:{epoch}"
        await free_earlier_leases(rt.db, owner=owner)
        worker = OutboxWorker(
            rt.db, rt.deliverers, clock=rt.clock.now, owner=owner, hook=self._hook
        )
        work = [
            asyncio.create_task(
                engine.run(work_stop, interval=self.settings.engine_tick), name="engine"
            ),
            asyncio.create_task(worker.run(work_stop), name="outbox"),
        ]
        register_jobs(scheduler, wakes)  # wake jobs rebuilt from the database at takeover
        register_witness(scheduler, witness_deps(self.settings, rt.db, rt.clock))
        register_refresh_jobs(
            scheduler,
            RefreshDeps(
                settings=self.settings,
                db=rt.db,
                executor=rt.executor,
                inventory=rt.inventory,
                clock=rt.clock,
            ),
        )
        if rt.jira is not None:
            rt.jira.register_jobs(scheduler)  # the Jira poll (issue 23), leader only
        scheduler.start()
        holder = asyncio.create_task(self.lock.hold(self._on_lost), name="leader-heartbeat")
        shutdown = asyncio.create_task(self.shutdown.wait())
        lost = asyncio.create_task(self._lost.wait())
        try:
            done, _ = await asyncio.wait(
                [*work, holder, shutdown, lost], return_when=asyncio.FIRST_COMPLETED
            )
            if shutdown in done:
                await self._finish(work_stop, work)
            else:
                if lost in done:
                    reason = "leadership lost"
                elif holder in done:
                    reason = f"the leader heartbeat stopped ({_outcome(holder)})"
                else:
                    reason = self._work_failure(work)
                log.warning("stepping down (epoch %s): %s", epoch, reason)
                await _cancel(work)
        finally:
            scheduler.shutdown(wait=False)
            await _cancel([holder, shutdown, lost, *work])
            await self.lock.release()
        if not self.shutdown.is_set():
            log.info("standing by after stepping down")

    async def _finish(self, work_stop: asyncio.Event, work: list[asyncio.Task[None]]) -> None:
        work_stop.set()
        grace = self.settings.shutdown_grace
        log.info("stopping the engine and the outbox (up to %gs for in-flight work)", grace)
        _, pending = await asyncio.wait(work, timeout=grace)
        if pending:
            log.warning("in-flight work did not finish within %gs; cancelling it", grace)
            await _cancel(list(pending))
        else:
            log.info("in-flight work finished")

    @staticmethod
    def _work_failure(work: list[asyncio.Task[None]]) -> str:
        for task in work:
            if task.done() and not task.cancelled():
                exc = task.exception()
                if isinstance(exc, StaleLeader):
                    return str(exc)
                if exc is not None:
                    log.error("%s stopped with an error", task.get_name(), exc_info=exc)
                    return f"{task.get_name()} stopped: {type(exc).__name__}: {exc}"
                return f"{task.get_name()} stopped"
        return "unknown"


def _outcome(task: asyncio.Task[Any]) -> str:
    if task.cancelled():
        return "cancelled"
    exc = task.exception()
    return "returned" if exc is None else f"{type(exc).__name__}: {exc}"


async def _cancel(tasks: list[asyncio.Task[Any]]) -> None:
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


async def serve(args: argparse.Namespace, settings: Settings) -> int:
    check_audit_settings(settings)
    problem = await schema_problem(settings)
    if problem is not None:
        print(f"patchgate: {problem}", file=sys.stderr)
        return 1
    runtime = create_app(settings)
    lock = leader_lock(runtime.db, takeover=settings.leader_takeover)
    server = Server(runtime, lock)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, server.request_shutdown, sig.name)
    runners: list[web.AppRunner] = []
    socket: SocketMode | None = None
    warming: asyncio.Task[None] | None = None
    try:
        socket_mode = runtime.slack is not None and settings.slack_app_token is not None
        deps = ServerDeps(
            db=runtime.db,
            leadership=lock,
            metrics=Metrics(
                last_tick=server.last_tick,
                compare=package_compare,
                zones=lambda: zone_views(runtime.executor),
            ),
            slack=None if socket_mode else runtime.slack,
            api=build_api(settings, runtime),
            jira=runtime.jira,
            metrics_interval=settings.metrics_interval,
        )
        own_port = settings.metrics_port is not None
        apps = [(build_web_app(deps, observability=not own_port), settings.port)]
        if settings.metrics_port is not None:
            apps.append((build_metrics_app(deps), settings.metrics_port))
        for app, port in apps:
            try:
                runners.append(await start_server(app, host=settings.host, port=port))
            except OSError as exc:
                where = f"{settings.host}:{port}"
                print(
                    f"patchgate: cannot listen on {where} ({exc.strerror or exc})", file=sys.stderr
                )
                return 1
        if not settings.slack_bot_token:
            log.info("Slack is not configured: running headless, notifications go to the log")
        elif socket_mode:
            assert settings.slack_app_token is not None
            socket = SocketMode(runtime.slack, settings.slack_app_token.get_secret_value())
            await socket.start()
        else:
            log.info("Slack: HTTP mode, POST /slack/events")
        freeze_startup_heap()
        tune_collector()
        if runtime.slack is not None:
            warming = asyncio.create_task(runtime.slack.warm(), name="fleet-view-warm")
        await server.run()
    finally:
        if warming is not None:
            warming.cancel()
        if socket is not None:
            await socket.close()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await lock.release()
        for runner in runners:
            await runner.cleanup()
        await runtime.close()
        await close_backends(server.backends)
    log.info("stopped")
    return 0


def register(sub: Any) -> None:
    """Add this group's subcommands."""
    command(
        sub,
        "serve",
        serve,
        "Run PatchGate: the HTTP server (/healthz, /metrics) and, when leader, the engine "
        "and the outbox worker.",
    )
