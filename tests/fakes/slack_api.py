"""A Slack Web API emulator (aiohttp) that answers in Slack's shapes and records every call.

Used with the real ``slack_sdk`` client (``base_url=emulator.url``). Supports the methods
PatchGate calls: chat.postMessage / update / postEphemeral, views.open / publish,
conversations.history / replies (message metadata with ``include_all_metadata``),
usergroups.users.list, users.lookupByEmail (``emails``), auth.test, and files_upload_v2's
three steps
(files.getUploadURLExternal, the POST to the upload URL, files.completeUploadExternal) in
the shapes Slack documents: a URL and a file id; HTTP 200 "OK - <bytes>" from the upload
URL (non-200 is a failure); ``{"ok": true, "files": [{"id", "title"}]}`` from the
completion, which shares the file in ``channel_id`` (in the thread of ``thread_ts``) once
per upload. Their errors: ``file_uploads_disabled`` (``uploads_disabled``),
``file_upload_size_restricted`` (``max_upload_bytes``), ``alt_txt_too_large``,
``invalid_arguments``, ``file_not_found`` (unknown, incomplete or already completed upload),
and the channel errors; the upload URL fails on request (``fail("500", methods=["upload"])``
or "503", "timeout"). File shares appear in conversations.history / replies with ``files``
(``id``, ``name``, ``title``). chat.postMessage to a user ID posts in the app's direct
messages with that person (kept under the user ID).
Errors come as HTTP 200 with ``ok: false`` (``channel_not_found``, ``not_in_channel``,
``invalid_auth``, ``msg_too_long``, ``invalid_blocks``); failures can be injected: 429 with
Retry-After, 503, a slow answer (timeout), and a post that lands but whose answer is lost.
A period of outage (refused, 503, 429, hang; tests/fakes/outage.py) is opened with
``go_down(kind)`` and closed with ``come_up()``; ``start()``/``stop()`` serve on a kept port.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, cast

from aiohttp import web

from tests.fakes import outage as outages

TEXT_LIMIT = 40_000
SECTION_LIMIT = 3_000
MAX_BLOCKS = 50


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    status: int = 200
    response: dict[str, Any] | None = None


@dataclass
class Failure:
    kind: str  # "429", "500", "503", "timeout", "lost"
    methods: frozenset[str] | None  # None: any method
    remaining: int


@dataclass
class UploadedFile:
    file_id: str
    filename: str
    length: int
    data: bytes | None = None
    title: str | None = None
    channel: str | None = None  # where completeUploadExternal shared it
    initial_comment: str | None = None
    thread_ts: str | None = None  # the thread it was shared in
    completed: bool = False


@dataclass
class SlackEmulator:
    token: str = "xoxb-test-token"
    channels: set[str] = field(default_factory=lambda: {"C0PATCHES", "C0ONCALL"})
    not_in: set[str] = field(default_factory=set)
    usergroups: dict[str, list[str]] = field(default_factory=dict)
    emails: dict[str, str] = field(default_factory=dict)  # users.lookupByEmail: e-mail -> user
    retry_after: int = 1
    slow_seconds: float = 3.0
    calls: list[Call] = field(default_factory=list)
    messages: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    files: dict[str, UploadedFile] = field(default_factory=dict)
    uploads_disabled: bool = False  # files.getUploadURLExternal: file_uploads_disabled
    max_upload_bytes: int | None = None  # larger: file_upload_size_restricted
    url: str = ""
    # Socket Mode: apps.connections.open (called with the app-level token) hands out a URL
    # of this emulator (tests/fakes/slack_socket.py); None answers as an app without it.
    socket: Any = None
    app_token: str = "xapp-test-token"
    _ts: Any = field(default_factory=lambda: itertools.count(1))
    _file_ids: Any = field(default_factory=lambda: itertools.count(1))
    _changed: asyncio.Event | None = None
    outage: outages.Outage = field(default_factory=outages.Outage)
    _runner: web.AppRunner | None = None
    _port: int = 0

    # --- test helpers -------------------------------------------------------------------

    def fail(self, kind: str, *, times: int = 1, methods: Iterable[str] | None = None) -> None:
        self.failures.append(Failure(kind, frozenset(methods) if methods else None, times))

    def called(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method and c.status == 200]

    def posted(self, channel: str | None = None) -> list[dict[str, Any]]:
        out = []
        for ch, msgs in self.messages.items():
            if channel is None or ch == channel:
                out.extend(msgs)
        return out

    def message(self, channel: str, ts: str) -> dict[str, Any] | None:
        return next((m for m in self.messages.get(channel, []) if m["ts"] == ts), None)

    async def wait_for(self, method: str, count: int = 1, *, within: float = 10.0) -> list[Call]:
        async def done() -> list[Call]:
            while len(self.called(method)) < count:
                assert self._changed is not None
                self._changed.clear()
                await self._changed.wait()
            return self.called(method)

        return await asyncio.wait_for(done(), within)

    # --- lifecycle and outages (the fixtures may also serve app() themselves) --------------

    async def start(self) -> None:
        """Serve (again): the first start picks an ephemeral port, later ones reuse it."""
        runner = web.AppRunner(self.app(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", self._port, reuse_address=True)
        await site.start()
        if not self._port:
            server = site._server
            assert server is not None
            self._port = cast(asyncio.Server, server).sockets[0].getsockname()[1]
            self.url = f"http://127.0.0.1:{self._port}/api/"
        self._runner = runner

    async def stop(self) -> None:
        """Stop serving: connections are refused until start() is called again."""
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def go_down(self, kind: str, *, retry_after: int = 1) -> None:
        await outages.go_down(self, kind, retry_after=retry_after)

    async def come_up(self) -> None:
        await outages.come_up(self)

    # --- the server -----------------------------------------------------------------------

    def app(self) -> web.Application:
        if self._changed is None:
            self._changed = asyncio.Event()
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._handle)
        app.router.add_post("/upload/{file_id}", self._upload)
        return app

    async def _params(self, request: web.Request) -> dict[str, Any]:
        params: dict[str, Any] = dict(request.query)
        if request.can_read_body:
            if request.content_type == "application/json":
                params.update(await request.json())
            else:
                params.update(dict(await request.post()))
        for key in ("blocks", "metadata", "view"):
            if isinstance(params.get(key), str):
                params[key] = json.loads(params[key])
        return params

    def _failure(self, method: str) -> str | None:
        for failure in self.failures:
            if failure.remaining > 0 and (failure.methods is None or method in failure.methods):
                failure.remaining -= 1
                return failure.kind
        return None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        params = await self._params(request)
        call = Call(method, params)
        self.calls.append(call)
        try:
            down = await self.outage.answer(
                request,
                rate_limited=lambda after: web.json_response(
                    {"ok": False, "error": "ratelimited"},
                    status=429,
                    headers={"Retry-After": after},
                ),
                unavailable=lambda: web.Response(status=503, text="Service Unavailable"),
            )
            if down is not None:
                call.status = down.status if down.status != 500 else 0
                return down
            kind = self._failure(method)
            if kind == "429":
                call.status = 429
                return web.json_response(
                    {"ok": False, "error": "ratelimited"},
                    status=429,
                    headers={"Retry-After": str(self.retry_after)},
                )
            if kind in ("500", "503"):
                call.status = int(kind)
                return web.Response(status=int(kind), text="Server Error")
            if kind == "timeout":
                call.status = 0
                await asyncio.sleep(self.slow_seconds)
            auth = request.headers.get("Authorization", "")
            token = self.app_token if method == "apps.connections.open" else self.token
            if auth != f"Bearer {token}":
                return self._answer(call, {"ok": False, "error": "invalid_auth"})
            handler = getattr(self, "_m_" + method.replace(".", "_"), None)
            if handler is None:
                return self._answer(call, {"ok": False, "error": "unknown_method"})
            body = handler(params)
            if kind == "lost":
                # The call took effect, but the answer never arrives.
                call.status = 0
                assert request.transport is not None
                request.transport.close()
                return web.Response(status=500)
            return self._answer(call, body)
        finally:
            if self._changed is not None:
                self._changed.set()

    def _answer(self, call: Call, body: dict[str, Any]) -> web.Response:
        call.response = body
        return web.json_response(body)

    # --- methods ----------------------------------------------------------------------------

    def _channel_error(self, channel: str | None) -> dict[str, Any] | None:
        if channel not in self.channels:
            return {"ok": False, "error": "channel_not_found"}
        if channel in self.not_in:
            return {"ok": False, "error": "not_in_channel"}
        return None

    @staticmethod
    def _content_error(params: dict[str, Any]) -> dict[str, Any] | None:
        if len(str(params.get("text") or "")) > TEXT_LIMIT:
            return {"ok": False, "error": "msg_too_long"}
        blocks = params.get("blocks") or []
        if len(blocks) > MAX_BLOCKS:
            return {"ok": False, "error": "invalid_blocks"}
        for block in blocks:
            text = (block.get("text") or {}).get("text") if isinstance(block, dict) else None
            if block.get("type") == "section" and text is not None and len(text) > SECTION_LIMIT:
                return {"ok": False, "error": "invalid_blocks"}
        if not params.get("text") and not blocks:
            return {"ok": False, "error": "no_text"}
        return None

    def _next_ts(self) -> str:
        return f"1700000000.{next(self._ts):06d}"

    def _m_auth_test(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "user_id": "U0PATCHBOT", "bot_id": "B0PATCHBOT", "team_id": "T0TEAM"}

    def _m_chat_postMessage(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = params.get("channel")
        direct = isinstance(channel, str) and channel.startswith("U")  # the app's DM
        error = (None if direct else self._channel_error(channel)) or self._content_error(params)
        if error:
            return error
        assert channel is not None
        msg = {
            "ts": self._next_ts(),
            "text": params.get("text"),
            "blocks": params.get("blocks") or [],
            "thread_ts": params.get("thread_ts"),
            "metadata": params.get("metadata"),
            "updates": 0,
        }
        self.messages.setdefault(channel, []).append(msg)
        return {"ok": True, "channel": channel, "ts": msg["ts"], "message": dict(msg)}

    def _m_chat_update(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = params.get("channel")
        error = self._channel_error(channel) or self._content_error(params)
        if error:
            return error
        assert channel is not None
        msg = self.message(channel, str(params.get("ts")))
        if msg is None:
            return {"ok": False, "error": "message_not_found"}
        msg["text"] = params.get("text")
        msg["blocks"] = params.get("blocks") or []
        msg["updates"] += 1
        return {"ok": True, "channel": channel, "ts": msg["ts"], "text": msg["text"]}

    def _m_chat_postEphemeral(self, params: dict[str, Any]) -> dict[str, Any]:
        error = self._channel_error(params.get("channel")) or self._content_error(params)
        return error or {"ok": True, "message_ts": self._next_ts()}

    def _m_views_open(self, params: dict[str, Any]) -> dict[str, Any]:
        if not params.get("trigger_id"):
            return {"ok": False, "error": "invalid_trigger_id"}
        return {"ok": True, "view": {"id": "V0VIEW", **(params.get("view") or {})}}

    def _m_views_publish(self, params: dict[str, Any]) -> dict[str, Any]:
        view = params.get("view") or {}
        if len(view.get("blocks") or []) > 100:
            return {"ok": False, "error": "invalid_blocks"}
        return {"ok": True, "view": {"id": "V0HOME", **view}}

    def _history(self, channel: str, params: dict[str, Any], *, thread: str | None) -> list[Any]:
        include = str(params.get("include_all_metadata", "")).lower() in ("1", "true")
        msgs = self.messages.get(channel, [])
        if thread is None:
            picked = [m for m in msgs if m["thread_ts"] is None]
        else:
            picked = [m for m in msgs if m["ts"] == thread or m["thread_ts"] == thread]
        out = []
        for m in picked:
            item = {"type": "message", "ts": m["ts"], "text": m["text"]}
            if thread is not None:
                item["thread_ts"] = m["thread_ts"] or m["ts"]
            if include and m["metadata"]:
                item["metadata"] = m["metadata"]
            if m.get("files"):
                item["files"] = [self._file_object(f) for f in m["files"]]
            out.append(item)
        return out

    def _file_object(self, file_id: str) -> dict[str, Any]:
        upload = self.files[file_id]
        return {"id": file_id, "name": upload.filename, "title": upload.title}

    def _m_conversations_history(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = params.get("channel")
        error = self._channel_error(channel)
        if error:
            return error
        assert channel is not None
        msgs = list(reversed(self._history(channel, params, thread=None)))  # newest first
        return {"ok": True, "messages": msgs, "has_more": False}

    def _m_conversations_replies(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = params.get("channel")
        error = self._channel_error(channel)
        if error:
            return error
        assert channel is not None
        if self.message(channel, str(params.get("ts"))) is None:
            return {"ok": False, "error": "thread_not_found"}
        return {"ok": True, "messages": self._history(channel, params, thread=str(params["ts"]))}

    def _m_users_lookupByEmail(self, params: dict[str, Any]) -> dict[str, Any]:
        """users.lookupByEmail (scope users:read.email): the user with that e-mail, from
        ``emails`` (address -> user ID); ``users_not_found`` otherwise."""
        email = str(params.get("email") or "").lower()
        user = self.emails.get(email)
        if user is None:
            return {"ok": False, "error": "users_not_found"}
        return {
            "ok": True,
            "user": {"id": user, "name": email.split("@")[0], "profile": {"email": email}},
        }

    def _m_usergroups_users_list(self, params: dict[str, Any]) -> dict[str, Any]:
        group = str(params.get("usergroup"))
        if group not in self.usergroups:
            return {"ok": False, "error": "no_such_subteam"}
        return {"ok": True, "users": list(self.usergroups[group])}

    # files_upload_v2: getUploadURLExternal -> POST the bytes to upload_url ->
    # completeUploadExternal shares the uploaded files in a channel (a message with files).

    def _m_files_getUploadURLExternal(self, params: dict[str, Any]) -> dict[str, Any]:
        filename = params.get("filename")
        length = str(params.get("length", ""))
        if not filename or not length.isdigit() or int(length) < 1:
            return {"ok": False, "error": "invalid_arguments"}
        if len(str(params.get("alt_txt") or "")) > 1000:
            return {"ok": False, "error": "alt_txt_too_large"}
        if self.uploads_disabled:
            return {"ok": False, "error": "file_uploads_disabled"}
        if self.max_upload_bytes is not None and int(length) > self.max_upload_bytes:
            return {"ok": False, "error": "file_upload_size_restricted"}
        file_id = f"F{next(self._file_ids):08d}"
        self.files[file_id] = UploadedFile(file_id, str(filename), int(length))
        base = self.url.removesuffix("api/")
        return {"ok": True, "upload_url": f"{base}upload/{file_id}", "file_id": file_id}

    async def _upload(self, request: web.Request) -> web.Response:
        upload = self.files.get(request.match_info["file_id"])
        data = await request.read()
        call = Call("upload", {"file_id": request.match_info["file_id"], "bytes": len(data)})
        self.calls.append(call)
        kind = self._failure("upload")
        if kind in ("500", "503"):
            call.status = int(kind)
            if self._changed is not None:
                self._changed.set()
            return web.Response(status=int(kind), text="Server Error")
        if kind == "timeout":
            call.status = 0
            await asyncio.sleep(self.slow_seconds)
        if upload is None:
            return web.Response(status=404, text="Not Found")
        upload.data = data
        if self._changed is not None:
            self._changed.set()
        return web.Response(text=f"OK - {len(data)}")

    def _m_files_completeUploadExternal(self, params: dict[str, Any]) -> dict[str, Any]:
        items = params.get("files")
        if isinstance(items, str):
            items = json.loads(items)
        channel = params.get("channel_id")
        if channel is not None and (error := self._channel_error(channel)):
            return error
        if not isinstance(items, list) or not items:
            return {"ok": False, "error": "invalid_arguments"}
        shared = []
        for item in items:
            upload = self.files.get(str(item.get("id")))
            if (
                upload is None
                or upload.completed
                or upload.data is None
                or len(upload.data) != upload.length
            ):
                return {"ok": False, "error": "file_not_found"}
            upload.title = item.get("title") or upload.filename
            shared.append(upload)
        for upload in shared:
            upload.channel = channel
            upload.initial_comment = params.get("initial_comment")
            upload.thread_ts = params.get("thread_ts")
            upload.completed = True
        if channel is not None:
            self.messages.setdefault(channel, []).append(
                {
                    "ts": self._next_ts(),
                    "text": params.get("initial_comment") or "",
                    "blocks": [],
                    "thread_ts": params.get("thread_ts"),
                    "metadata": None,
                    "updates": 0,
                    "files": [u.file_id for u in shared],
                }
            )
        return {
            "ok": True,
            "files": [
                {"id": u.file_id, "name": u.filename, "title": u.title, "size": u.length}
                for u in shared
            ],
        }

    def _m_apps_connections_open(self, params: dict[str, Any]) -> dict[str, Any]:
        if self.socket is None:
            return {"ok": False, "error": "not_allowed_token_type"}
        return {"ok": True, "url": self.socket.new_url()}


@asynccontextmanager
async def slack_emulator(**fields: Any) -> AsyncIterator[SlackEmulator]:
    """A :class:`SlackEmulator` (``fields``: its settings) serving on an ephemeral port of
    127.0.0.1 (``emulator.url``) until the block ends; an outage left on is ended first."""
    emulator = SlackEmulator(**fields)
    await emulator.start()
    try:
        yield emulator
    finally:
        await emulator.come_up()
        await emulator.stop()
