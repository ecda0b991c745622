"""The console's workspace: what was posted, and who sees what (the page reads it; the
Web API in bot/console/standin.py writes it)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from dataclasses import dataclass, field
from typing import Any

from bot.console.people import APP_ID, BOT_ID, BOT_USER, TEAM_ID

Json = dict[str, Any]

TRIGGER_SECONDS = 10.0  # Slack's triggers last 3 s; the console is a little kinder


@dataclass
class Modal:
    id: str
    user: str
    view: Json
    errors: dict[str, str] = field(default_factory=dict)
    hash: str = ""


@dataclass
class Workspace:
    """Everything posted, and who sees what. ``version`` grows on every change;
    :meth:`changed` wakes the page's long polls."""

    token: str
    url: str = ""  # the Web API base, ".../api/"
    messages: dict[str, list[Json]] = field(default_factory=dict)  # channel -> messages
    ephemeral: list[Json] = field(default_factory=list)  # each with "user"
    homes: dict[str, Json] = field(default_factory=dict)  # user -> published view
    modals: dict[str, list[Modal]] = field(default_factory=dict)  # user -> stack
    files: dict[str, Json] = field(default_factory=dict)
    triggers: dict[str, tuple[str, float]] = field(default_factory=dict)  # id -> user, at
    caption: str = ""  # the tour's narration
    version: int = 0
    calls: list[tuple[str, Json]] = field(default_factory=list)
    _ts: Any = field(default_factory=lambda: itertools.count(1))
    _ids: Any = field(default_factory=lambda: itertools.count(1))
    _cond: asyncio.Condition | None = None

    # --- change notification ----------------------------------------------------------

    def _condition(self) -> asyncio.Condition:
        if self._cond is None:
            self._cond = asyncio.Condition()
        return self._cond

    async def changed(self) -> None:
        self.version += 1
        cond = self._condition()
        async with cond:
            cond.notify_all()

    async def wait_past(self, version: int, seconds: float) -> None:
        """Return when ``version`` is out of date, or after ``seconds``."""
        cond = self._condition()
        async with cond:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(cond.wait_for(lambda: self.version > version), seconds)

    # --- helpers for the page and the tour -----------------------------------------------

    def next_ts(self) -> str:
        return f"{int(time.time())}.{next(self._ts):06d}"

    def new_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):08d}"

    def trigger_for(self, user: str) -> str:
        trigger = f"{next(self._ids)}.{int(time.time())}.console"
        self.triggers[trigger] = (user, time.monotonic())
        return trigger

    def message(self, channel: str, ts: str) -> Json | None:
        return next((m for m in self.messages.get(channel, []) if m["ts"] == ts), None)

    def post(self, channel: str, message: Json) -> Json:
        msg: Json = {
            "type": "message",
            "ts": self.next_ts(),
            "user": BOT_USER,
            "bot_id": BOT_ID,
            "text": message.get("text") or "",
            "blocks": message.get("blocks") or [],
            "thread_ts": message.get("thread_ts"),
            "metadata": message.get("metadata"),
            "files": message.get("files") or [],
            "edited": False,
        }
        parent = msg["thread_ts"]
        if parent is not None and self.message(channel, str(parent)) is None:
            msg["thread_ts"] = None  # Slack posts to the channel when the parent is gone
        self.messages.setdefault(channel, []).append(msg)
        return msg

    def say_ephemeral(self, channel: str, user: str, message: Json) -> Json:
        msg = {
            "ts": self.next_ts(),
            "user": user,
            "channel": channel,
            "text": message.get("text") or "",
            "blocks": message.get("blocks") or [],
            "thread_ts": message.get("thread_ts"),
            "echo": bool(message.get("echo")),  # the console's echo of a typed command
        }
        self.ephemeral.append(msg)
        return msg

    def open_modal(self, user: str, view: Json, *, push: bool = False) -> Modal:
        modal = Modal(self.new_id("V"), user, view, hash=self.new_id("h"))
        stack = self.modals.setdefault(user, [])
        if not push:
            stack.clear()
        stack.append(modal)
        return modal

    def find_modal(self, view_id: str | None, external_id: str | None = None) -> Modal | None:
        for stack in self.modals.values():
            for modal in stack:
                if modal.id == view_id or (
                    external_id and modal.view.get("external_id") == external_id
                ):
                    return modal
        return None

    def view_object(self, view: Json, *, view_id: str, user: str, hash_: str = "") -> Json:
        """A view as Slack returns it (and sends it in payloads)."""
        return {
            "id": view_id,
            "team_id": TEAM_ID,
            "type": view.get("type", "modal"),
            "blocks": view.get("blocks") or [],
            "private_metadata": view.get("private_metadata", ""),
            "callback_id": view.get("callback_id", ""),
            "external_id": view.get("external_id", ""),
            "title": view.get("title"),
            "submit": view.get("submit"),
            "close": view.get("close"),
            "state": {"values": {}},
            "hash": hash_,
            "app_id": APP_ID,
            "bot_id": BOT_ID,
            "user": user,
        }


def public_message(msg: Json) -> Json:
    """A stored message as the Web API returns it."""
    out = {k: v for k, v in msg.items() if k != "edited" and v not in (None, [])}
    if msg.get("edited"):
        out["edited"] = {"user": BOT_USER, "ts": msg["ts"]}
    return out
