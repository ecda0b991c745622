"""A small scriptable HTTP server for the REST client base's tests (not a tool emulator).

``/api/...`` answers what the test queued (status, headers, body) in order, then
``200 {"ok": true}``; every request is recorded. ``/oauth2/token`` is an RFC 6749 §4.4
token endpoint (a form POST of ``grant_type=client_credentials``, the answer
``{"access_token", "token_type", "expires_in"}``, errors as ``{"error",
"error_description"}`` with 400/401); with ``bearer_only`` the API answers 401 to any
token but the newest one issued (a revoked or rotated token).
"""

from __future__ import annotations

import asyncio
import json
import ssl
from dataclasses import dataclass, field
from typing import Any, cast

from aiohttp import web

CLIENT_ID = "patchgate-app"
CLIENT_SECRET = "s3cr3t-Cl1ent-VALUE"


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: str = ""


@dataclass
class Answer:
    status: int = 200
    body: Any = field(default_factory=lambda: {"ok": True})
    headers: dict[str, str] = field(default_factory=dict)


class RestServer:
    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self.queue: list[Answer] = []
        self.seen: list[Seen] = []
        self.forms: list[dict[str, str]] = []
        self.tokens: list[str] = []
        self.expires_in = 3600
        self.token_error: tuple[int, dict[str, str]] | None = None
        self.bearer_only = False
        self._ssl = ssl_context
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def origin(self) -> str:
        return f"{'https' if self._ssl else 'http'}://127.0.0.1:{self.port}"

    def answer(self, status: int = 200, body: Any = None, **headers: str) -> None:
        self.queue.append(Answer(status, {"ok": True} if body is None else body, headers))

    def api_calls(self) -> list[Seen]:
        return [s for s in self.seen if s.path.startswith("/api/")]

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/oauth2/token", self._token)
        app.router.add_route("*", "/api/{tail:.*}", self._api)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self._ssl)
        await site.start()
        self.port = cast(asyncio.Server, site._server).sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _api(self, request: web.Request) -> web.StreamResponse:
        self.seen.append(
            Seen(
                request.method,
                request.path,
                dict(request.query),
                dict(request.headers),
                await request.text(),
            )
        )
        if self.bearer_only and request.headers.get("Authorization") != self._newest():
            return web.json_response({"error": {"code": "InvalidAuthenticationToken"}}, status=401)
        answer = self.queue.pop(0) if self.queue else Answer()
        body = answer.body
        text = body if isinstance(body, str) else json.dumps(body)
        return web.Response(status=answer.status, text=text, headers=answer.headers)

    def _newest(self) -> str:
        return f"Bearer {self.tokens[-1]}" if self.tokens else ""

    async def _token(self, request: web.Request) -> web.StreamResponse:
        form = {k: str(v) for k, v in (await request.post()).items()}
        self.forms.append(form)
        self.seen.append(Seen("POST", request.path, {}, dict(request.headers)))
        if self.token_error is not None:
            status, body = self.token_error
            return web.json_response(body, status=status)
        if form.get("grant_type") != "client_credentials":
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        if (form.get("client_id"), form.get("client_secret")) != (CLIENT_ID, CLIENT_SECRET):
            return web.json_response(
                {"error": "invalid_client", "error_description": "Invalid client secret."},
                status=401,
            )
        self.tokens.append(f"tok-{len(self.tokens) + 1}")
        return web.json_response(
            {"access_token": self.tokens[-1], "token_type": "Bearer", "expires_in": self.expires_in}
        )
