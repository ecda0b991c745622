"""The HTTP face of ``patchgate serve`` (aiohttp): ``/healthz`` and ``/metrics``, always.

``/slack/events`` (HTTP mode) and the Socket Mode runner are the Slack issue's: they
are added in :func:`build_web_app` at the marked place, from ``bot.app.create_app``'s
Bolt app, without changing the two routes here.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, Protocol

import sqlalchemy as sa
from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from bot.metrics import CONTENT_TYPE, Metrics
from workflows.db import Database, read_only

log = logging.getLogger("patchgate.server")

DB_CHECK_TIMEOUT = 5.0


class Leadership(Protocol):
    """What the server shows about leadership (``bot.leader.LeaderLock`` has these)."""

    @property
    def is_leader(self) -> bool: ...

    @property
    def epoch(self) -> int | None: ...

    @property
    def refusal(self) -> str | None: ...


@dataclass
class ServerDeps:
    db: Database
    leadership: Leadership
    metrics: Metrics
    slack: Any = None  # the Bolt AsyncApp in HTTP mode (POST /slack/events), else None


DEPS = web.AppKey("patchgate_deps", ServerDeps)


async def _database_ok(db: Database) -> str | None:
    """None if the database answers; otherwise a short reason."""
    try:
        async with asyncio.timeout(DB_CHECK_TIMEOUT):
            async with read_only(db) as session:
                await session.execute(sa.select(1))
    except TimeoutError:
        return f"no answer within {DB_CHECK_TIMEOUT:g}s"
    except (SQLAlchemyError, OSError) as exc:
        return type(exc).__name__
    return None


async def healthz(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    lead = deps.leadership
    problem = await _database_ok(deps.db)
    body: dict[str, object] = {
        "status": "ok" if problem is None else "unavailable",
        "leader": lead.is_leader,
        "epoch": lead.epoch,
        "database": "ok" if problem is None else f"unreachable: {problem}",
    }
    if not lead.is_leader:
        body["standby"] = lead.refusal or "another process leads, or the lock is being acquired"
    return web.json_response(body, status=200 if problem is None else 503)


async def metrics(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    lead = deps.leadership
    try:
        await deps.metrics.refresh(deps.db, leader=lead.is_leader, epoch=lead.epoch)
    except (SQLAlchemyError, OSError) as exc:
        log.warning("/metrics: cannot read the database (%s)", type(exc).__name__)
        return web.Response(status=503, text="database unreachable\n")
    return web.Response(body=deps.metrics.exposition(), headers={"Content-Type": CONTENT_TYPE})


def build_web_app(deps: ServerDeps) -> web.Application:
    app = web.Application()
    app[DEPS] = deps
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    # Slack (HTTP mode): commands, interactivity and events, through the Bolt AsyncApp.
    if deps.slack is not None:
        app.router.add_post("/slack/events", slack_events)
    return app


async def slack_events(request: web.Request) -> web.Response:
    from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request

    bolt = request.app[DEPS].slack
    response = await bolt.async_dispatch(await to_bolt_request(request))
    return await to_aiohttp_response(response)


async def start_server(app: web.Application, *, host: str, port: int) -> web.AppRunner:
    """Start listening; the caller owns ``runner.cleanup()``."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    log.info("HTTP server listening on %s:%s (/healthz, /metrics)", host, port)
    return runner
