"""The HTTP face of ``patchgate serve`` (aiohttp): ``/healthz`` and ``/metrics``, always
(on the Slack port, or on ``PATCHGATE_METRICS_PORT`` alone when it is set: see
:func:`build_metrics_app`); ``/metrics`` answers the last background snapshot
(``bot.metrics_snapshot``), never the database per request.

``/slack/events`` (HTTP mode) and the Socket Mode runner are the Slack issue's: they
are added in :func:`build_web_app` at the marked place, from ``bot.app.create_app``'s
Bolt app, without changing the two routes here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import aiohttp
import sqlalchemy as sa
from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from bot.metrics import CONTENT_TYPE, Metrics
from bot.metrics_snapshot import DEFAULT_INTERVAL, DEFAULT_RATE, MetricsSnapshot, Pacer
from workflows.db import Database, read_only

if TYPE_CHECKING:
    from bot.api import Api
    from bot.slack.app import SlackApp

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
    # the Bolt app and its HTTP guard in HTTP mode (POST /slack/events), else None
    slack: SlackApp | None = None
    # the decisions API (/api/v1, bot.api.Api): personal tokens, the CLI's decisions
    api: Api | None = None
    # the Jira face (bot.jira.JiraFace): POST /jira/webhook[/<secret>] when configured
    jira: Any = None
    # seconds between the background refreshes of the /metrics snapshot
    metrics_interval: float = DEFAULT_INTERVAL
    # /healthz and /metrics answers per second, all clients together (bot.metrics_snapshot)
    observability_rate: float = DEFAULT_RATE


DEPS = web.AppKey("patchgate_deps", ServerDeps)
SNAPSHOT = web.AppKey("patchgate_metrics_snapshot", MetricsSnapshot)
PACER = web.AppKey("patchgate_observability_pacer", Pacer)


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


def _too_many() -> web.Response:
    return web.Response(status=429, text="too many requests\n", headers={"Retry-After": "1"})


async def healthz(request: web.Request) -> web.Response:
    if not await request.app[PACER].turn():
        return _too_many()
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
    if not await request.app[PACER].turn():
        return _too_many()
    body, problem = await request.app[SNAPSHOT].current()
    if body is None:
        return web.Response(status=503, text=f"{problem}\n")
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


def _add_observability(app: web.Application, deps: ServerDeps) -> None:
    """/healthz, /metrics and the task that refreshes the metrics snapshot."""
    snapshot = MetricsSnapshot(
        deps.metrics, deps.db, deps.leadership, interval=deps.metrics_interval
    )
    app[SNAPSHOT] = snapshot
    app[PACER] = Pacer(deps.observability_rate)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)

    async def refreshing(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(snapshot.run(), name="metrics-snapshot")
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    app.cleanup_ctx.append(refreshing)


def build_metrics_app(deps: ServerDeps) -> web.Application:
    """``/healthz`` and ``/metrics`` alone, for ``PATCHGATE_METRICS_PORT`` (the Slack
    port then serves neither: scrapers and probes never share its listener)."""
    app = web.Application()
    app[DEPS] = deps
    _add_observability(app, deps)
    return app


def build_web_app(deps: ServerDeps, *, observability: bool = True) -> web.Application:
    """The Slack port's app: ``/slack/events`` in HTTP mode, and ``/healthz`` and
    ``/metrics`` unless ``observability`` is False (they are on their own port)."""
    app = web.Application()
    app[DEPS] = deps
    if observability:
        _add_observability(app, deps)
    # Slack (HTTP mode): commands, interactivity and events, through the Bolt AsyncApp.
    if deps.slack is not None:
        app.router.add_post("/slack/events", slack_events)
        app.cleanup_ctx.append(_slack_session_ctx)
    if deps.api is not None:
        deps.api.register(app)
    if deps.jira is not None:
        deps.jira.register(app)
    return app


# --- Slack ----------------------------------------------------------------------------------


def open_slack_session(bolt: Any) -> aiohttp.ClientSession:
    """One HTTP session (and connection pool) for the Bolt app's Web API calls.

    Without it ``slack_sdk``'s AsyncWebClient opens a new session and TCP connection
    for every call (e.g. the ephemeral answer after each click), which costs CPU on the
    event loop that acks other requests."""
    client = bolt.client
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=client.timeout))
    client.session = session
    return session


async def _slack_session_ctx(app: web.Application) -> AsyncIterator[None]:
    deps = app[DEPS]
    assert deps.slack is not None
    session = open_slack_session(deps.slack.bolt)
    # Slack requests acked but left unprocessed (bot.slack.journal): once now, then
    # periodically on the leader.
    sweeper = asyncio.create_task(
        deps.slack.journal.run(lambda: deps.leadership.is_leader), name="slack-journal"
    )
    yield
    sweeper.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await sweeper
    await session.close()


async def slack_events(request: web.Request) -> web.Response:
    """Slack's HTTP requests, every one handed to Bolt's ``async_dispatch``; its
    middleware ``bot.slack.guard.HttpGuard`` checks them (signature, timestamp, replay)
    before any listener runs. Only what Bolt cannot take is answered here, refused and
    audited by the guard: a body over aiohttp's limit, a body Bolt cannot parse."""
    from slack_bolt.adapter.aiohttp import to_aiohttp_response
    from slack_bolt.request.async_request import AsyncBoltRequest

    from bot.slack.guard import malformed

    slack = request.app[DEPS].slack
    assert slack is not None
    try:
        body = await request.read()  # aiohttp refuses more than client_max_size (1 MiB)
    except web.HTTPRequestEntityTooLarge:
        await slack.guard.refuse_oversized(request.content_length)
        raise
    slack.guard.quiet.enter()  # work after other requests' acks waits while this one is answered
    try:
        why = malformed(body, request.headers.get("Content-Type"))
        if why is None:
            try:
                bolt_request = AsyncBoltRequest(
                    body=body.decode("utf-8"),
                    query=request.query_string,
                    headers=request.headers,  # type: ignore[arg-type]
                )
            except (AttributeError, TypeError, KeyError, IndexError) as exc:
                # an object whose shape Bolt's context cannot take (e.g. "user": 1)
                why = f"{type(exc).__name__} in Bolt's context"
        if why is not None:
            refusal = await slack.guard.refuse_unparsable(request.headers, body, why)
            return web.json_response({"error": refusal.reason}, status=refusal.status)
        try:
            answer = await slack.bolt.async_dispatch(bolt_request)
        except (AttributeError, TypeError, KeyError, IndexError) as exc:
            # raised by Bolt's listener matching (outside its own error handling), on a
            # field of a shape it takes for granted that bot.slack.guard.misshapen missed
            log.warning("Bolt could not match a Slack request", exc_info=exc)
            refusal = await slack.guard.refuse_misshapen(exc)
            return web.json_response({"error": refusal.reason}, status=refusal.status)
        return await to_aiohttp_response(answer)
    finally:
        slack.guard.quiet.leave()


class SocketMode:
    """Slack in Socket Mode: Bolt's ``AsyncSocketModeHandler`` over ``slack_sdk``'s aiohttp
    ``SocketModeClient``. ``apps.connections.open`` (with the app-level token, at the
    Web API base URL from Settings) gives the WebSocket URL; every envelope is dispatched
    to the same Bolt app as HTTP mode and acked over the socket with its ``envelope_id``.
    The client reconnects by itself (a new URL) when Slack closes the socket or asks it
    to (``disconnect``), and when pings stop being answered for 4 times ``ping_interval``.
    Envelopes of a shape Bolt cannot take are refused first (``bot.slack.envelopes``).
    """

    def __init__(self, slack: SlackApp, app_token: str, *, ping_interval: float = 10.0) -> None:
        from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler

        from bot.slack.envelopes import envelope_guard

        bolt = slack.bolt
        self.bolt = bolt
        self.session: aiohttp.ClientSession | None = None
        self._connecting: asyncio.Task[None] | None = None
        self.handler = AsyncSocketModeHandler(bolt, app_token, ping_interval=ping_interval)
        # before Bolt's request listener: envelopes of a shape Bolt cannot take are refused
        self.client.message_listeners.append(envelope_guard(slack.guard.refusals))

    @property
    def client(self) -> Any:
        """The ``slack_sdk.socket_mode.aiohttp.SocketModeClient``."""
        return self.handler.client

    async def start(self) -> None:
        """Connect in the background: while Slack cannot be reached the client keeps
        retrying, and ``serve`` (the engine, /healthz) must not wait for it."""
        self.session = open_slack_session(self.bolt)
        self._connecting = asyncio.create_task(self._connect(), name="slack-socket-mode")

    async def _connect(self) -> None:
        await self.handler.connect_async()  # type: ignore[no-untyped-call]
        log.info("Slack: Socket Mode connected")

    async def close(self) -> None:
        if self._connecting is not None and not self._connecting.done():
            self._connecting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._connecting
        await self.handler.close_async()  # type: ignore[no-untyped-call]
        if self.session is not None:
            await self.session.close()


def _routes(app: web.Application) -> list[str]:
    return sorted({r.resource.canonical for r in app.router.routes() if r.resource is not None})


async def start_server(app: web.Application, *, host: str, port: int) -> web.AppRunner:
    """Start listening; the caller owns ``runner.cleanup()``."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    log.info("HTTP server listening on %s:%s (%s)", host, port, ", ".join(_routes(app)))
    return runner
