"""A Slack Socket Mode emulator (aiohttp WebSocket server), driven by tests.

Slack's protocol, as the real ``slack_sdk`` ``SocketModeClient`` speaks it:

- the app calls ``apps.connections.open`` with its app-level token (``xapp-…``) and gets a
  one-use ``wss://`` URL (here ``ws://127.0.0.1:PORT/link?ticket=N``; the Web API
  emulator in ``slack_api.py`` answers that call with :meth:`SocketEmulator.new_url`);
- on connect the server sends ``{"type": "hello", …}``;
- the server pushes envelopes ``{"envelope_id", "type": "slash_commands" |
  "interactive" | "events_api", "payload", "accepts_response_payload", …}``, and the
  app acks each with ``{"envelope_id": …, "payload": …}`` on the same socket;
- the server may ask the app to reconnect (``{"type": "disconnect", "reason":
  "refresh_requested"}``) or simply drop the socket; the app opens a new URL.

Tests push envelopes with :meth:`SocketEmulator.send` and read the acks with
:meth:`SocketEmulator.ack`; :meth:`SocketEmulator.drop` closes every open socket,
:meth:`SocketEmulator.cut` breaks them without a close frame.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web


@dataclass
class SocketEmulator:
    app_id: str = "A0PATCHGATE"
    url: str = ""  # ws://127.0.0.1:PORT/link (set when the server starts)
    tickets: set[str] = field(default_factory=set)
    opened: int = 0  # URLs handed out by apps.connections.open
    connected: int = 0  # WebSocket connections accepted (each got a hello)
    acks: dict[str, dict[str, Any]] = field(default_factory=dict)  # envelope_id -> ack
    sent: list[dict[str, Any]] = field(default_factory=list)
    _sockets: list[web.WebSocketResponse] = field(default_factory=list)
    _transports: dict[web.WebSocketResponse, Any] = field(default_factory=dict)
    _counter: Any = field(default_factory=lambda: itertools.count(1))
    _changed: asyncio.Event | None = None

    # --- used by the Web API emulator -----------------------------------------------------

    def new_url(self) -> str:
        """A fresh one-use URL, as ``apps.connections.open`` returns."""
        ticket = f"{next(self._counter)}-{uuid.uuid4().hex[:8]}"
        self.tickets.add(ticket)
        self.opened += 1
        return f"{self.url}?ticket={ticket}"

    # --- test helpers -----------------------------------------------------------------------

    @property
    def live(self) -> int:
        return sum(1 for ws in self._sockets if not ws.closed)

    async def _until(self, what: str, done: Any, within: float) -> None:
        async def wait() -> None:
            while not done():
                assert self._changed is not None
                self._changed.clear()
                await self._changed.wait()

        try:
            await asyncio.wait_for(wait(), within)
        except TimeoutError:
            raise AssertionError(f"Socket Mode: {what} did not happen within {within:g}s") from None

    async def wait_connected(self, count: int = 1, *, within: float = 15.0) -> None:
        """Until ``count`` connections in all have been made and one is open."""
        await self._until(
            f"connection #{count}", lambda: self.connected >= count and self.live > 0, within
        )

    async def send(
        self, kind: str, payload: dict[str, Any], *, envelope_id: str | None = None
    ) -> str:
        """Push one envelope on the newest open socket; its envelope id."""
        open_sockets = [ws for ws in self._sockets if not ws.closed]
        if not open_sockets:
            raise AssertionError("Socket Mode: no open connection to send on")
        envelope = {
            "envelope_id": envelope_id or str(uuid.uuid4()),
            "type": kind,
            "payload": payload,
            "accepts_response_payload": kind != "events_api",
            "retry_attempt": 0,
            "retry_reason": "",
        }
        self.sent.append(envelope)
        await open_sockets[-1].send_str(json.dumps(envelope))
        return str(envelope["envelope_id"])

    async def send_raw(self, text: str) -> None:
        """Push one WebSocket message as given (hostile envelopes: any JSON, or none)."""
        open_sockets = [ws for ws in self._sockets if not ws.closed]
        if not open_sockets:
            raise AssertionError("Socket Mode: no open connection to send on")
        await open_sockets[-1].send_str(text)

    async def ack(self, envelope_id: str, *, within: float = 10.0) -> dict[str, Any]:
        """The app's ack of one envelope (``{"envelope_id", "payload"?}``)."""
        await self._until(f"the ack of {envelope_id}", lambda: envelope_id in self.acks, within)
        return self.acks[envelope_id]

    async def request(
        self, kind: str, payload: dict[str, Any], *, within: float = 10.0
    ) -> dict[str, Any]:
        """Send an envelope and wait for its ack."""
        return await self.ack(await self.send(kind, payload), within=within)

    async def ask_to_reconnect(self, reason: str = "refresh_requested") -> None:
        """Slack's ``disconnect`` message: the app should open a new connection."""
        for ws in [ws for ws in self._sockets if not ws.closed]:
            await ws.send_str(json.dumps({"type": "disconnect", "reason": reason}))

    async def drop(self) -> None:
        """Close every open socket from the server side (a dropped connection)."""
        for ws in [ws for ws in self._sockets if not ws.closed]:
            await ws.close(code=1011, message=b"emulator dropped the connection")
        self._notify()

    async def cut(self) -> None:
        """Cut every open connection at the TCP level, with no close frame (a network
        failure): the client only notices when its pings go unanswered or fail."""
        for ws, transport in list(self._transports.items()):
            if not ws.closed:
                transport.abort()
        self._notify()

    # --- the server ----------------------------------------------------------------------

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()

    def app(self) -> web.Application:
        self._changed = asyncio.Event()
        app = web.Application()
        app.router.add_get("/link", self._link)
        return app

    async def _link(self, request: web.Request) -> web.StreamResponse:
        ticket = request.query.get("ticket", "")
        if ticket not in self.tickets:
            return web.json_response({"error": "invalid or used ticket"}, status=401)
        self.tickets.discard(ticket)  # one use, as Slack's URLs
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self._sockets.append(ws)
        self._transports[ws] = request.transport
        self.connected += 1
        await ws.send_str(
            json.dumps(
                {
                    "type": "hello",
                    "num_connections": self.live,
                    "debug_info": {"host": "emulator", "approximate_connection_time": 3600},
                    "connection_info": {"app_id": self.app_id},
                }
            )
        )
        self._notify()
        try:
            async for message in ws:
                if message.type == WSMsgType.TEXT:
                    data = json.loads(message.data)
                    if "envelope_id" in data:
                        data["received_at"] = time.monotonic()
                        self.acks[data["envelope_id"]] = data
                        self._notify()
        finally:
            self._notify()
        return ws


def slash_command(text: str, *, user: str, channel: str = "C0PATCHES") -> dict[str, Any]:
    """A ``slash_commands`` payload as Slack sends it over the socket."""
    return {
        "token": "legacy",
        "team_id": "T0TEAM",
        "team_domain": "example",
        "channel_id": channel,
        "channel_name": "patches",
        "user_id": user,
        "user_name": user.lower(),
        "command": "/patch",
        "text": text,
        "api_app_id": "A0PATCHGATE",
        "is_enterprise_install": "false",
        "response_url": "https://hooks.slack.invalid/commands/1",
        "trigger_id": f"trigger.{uuid.uuid4().hex[:8]}",
    }


def button_click(
    action_id: str, value: str, *, user: str, channel: str = "C0PATCHES", ts: str = "1.1"
) -> dict[str, Any]:
    """An ``interactive`` ``block_actions`` payload as Slack sends it over the socket."""
    return {
        "type": "block_actions",
        "team": {"id": "T0TEAM"},
        "user": {"id": user},
        "api_app_id": "A0PATCHGATE",
        "channel": {"id": channel},
        "container": {"type": "message", "channel_id": channel, "message_ts": ts},
        "message": {"ts": ts},
        "trigger_id": f"trigger.{uuid.uuid4().hex[:8]}",
        "actions": [
            {
                "action_id": action_id,
                "block_id": "gate_actions",
                "value": value,
                "type": "button",
                "action_ts": str(time.time()),
            }
        ],
    }
