"""The console's Slack stand-in: the Web API methods PatchGate calls, on a local workspace.

The real ``slack_sdk`` client (PATCHGATE_SLACK_API_URL pointing here) posts, updates,
threads, ephemeral messages, modals, App Home and file uploads; the answers have Slack's
documented shapes and errors (``channel_not_found``, ``invalid_auth``,
``message_not_found``, ``expired_trigger_id``, ``not_found``). What was posted is kept
in :class:`Workspace`, which the page (bot/console/page.py) shows.

Not Slack: one workspace, no rate limits, no persistence; a restart forgets it.
"""

from __future__ import annotations

import json
import time
from typing import Any

from aiohttp import web

from bot.console.people import BOT_ID, BOT_USER, CHANNELS, PEOPLE, TEAM_ID, USERGROUPS, person
from bot.console.workspace import TRIGGER_SECONDS, Json, Workspace, public_message

__all__ = ["WebApi", "Workspace"]

MAX_BLOCKS = 50
HOME_MAX_BLOCKS = 100


class WebApi:
    """The Web API routes (``/api/{method}`` and the upload URL) on a :class:`Workspace`."""

    def __init__(self, workspace: Workspace) -> None:
        self.ws = workspace

    def routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/api/{method}", self._handle)
        app.router.add_post("/upload/{file_id}", self._upload)

    async def _params(self, request: web.Request) -> Json:
        params: Json = dict(request.query)
        if request.can_read_body:
            if request.content_type == "application/json":
                params.update(await request.json())
            else:
                params.update(dict(await request.post()))
        for key in ("blocks", "metadata", "view", "files", "attachments"):
            if isinstance(params.get(key), str) and params[key]:
                try:
                    params[key] = json.loads(params[key])
                except ValueError:
                    params[key] = None
        return params

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        if request.headers.get("Authorization", "") != f"Bearer {self.ws.token}":
            return web.json_response({"ok": False, "error": "invalid_auth"})
        try:
            params = await self._params(request)
        except ValueError:
            return web.json_response({"ok": False, "error": "invalid_json"})
        handler = getattr(self, "_m_" + method.replace(".", "_"), None)
        if handler is None:
            return web.json_response({"ok": False, "error": "unknown_method"})
        self.ws.calls.append((method, params))
        answer: Json = handler(params)
        if answer.get("ok"):
            await self.ws.changed()
        return web.json_response(answer)

    # --- checks ----------------------------------------------------------------------------

    @staticmethod
    def _channel_error(channel: Any) -> Json | None:
        if not isinstance(channel, str) or (channel not in CHANNELS and person(channel) is None):
            return {"ok": False, "error": "channel_not_found"}
        return None

    @staticmethod
    def _content_error(params: Json) -> Json | None:
        blocks = params.get("blocks") or []
        if not isinstance(blocks, list) or len(blocks) > MAX_BLOCKS:
            return {"ok": False, "error": "invalid_blocks"}
        if not params.get("text") and not blocks:
            return {"ok": False, "error": "no_text"}
        return None

    # --- methods -----------------------------------------------------------------------------

    def _m_auth_test(self, params: Json) -> Json:
        return {"ok": True, "user_id": BOT_USER, "bot_id": BOT_ID, "team_id": TEAM_ID}

    def _m_chat_postMessage(self, params: Json) -> Json:
        channel = params.get("channel")
        error = self._channel_error(channel) or self._content_error(params)
        if error:
            return error
        msg = self.ws.post(str(channel), params)
        return {"ok": True, "channel": channel, "ts": msg["ts"], "message": public_message(msg)}

    def _m_chat_update(self, params: Json) -> Json:
        channel = params.get("channel")
        error = self._channel_error(channel) or self._content_error(params)
        if error:
            return error
        msg = self.ws.message(str(channel), str(params.get("ts")))
        if msg is None:
            return {"ok": False, "error": "message_not_found"}
        msg["text"] = params.get("text") or ""
        msg["blocks"] = params.get("blocks") or []
        msg["edited"] = True
        return {"ok": True, "channel": channel, "ts": msg["ts"], "text": msg["text"]}

    def _m_chat_postEphemeral(self, params: Json) -> Json:
        channel, user = params.get("channel"), params.get("user")
        error = self._channel_error(channel) or self._content_error(params)
        if error:
            return error
        if not isinstance(user, str) or person(user) is None:
            return {"ok": False, "error": "user_not_in_channel"}
        msg = self.ws.say_ephemeral(str(channel), user, params)
        return {"ok": True, "message_ts": msg["ts"]}

    def _m_views_open(self, params: Json) -> Json:
        trigger = self.ws.triggers.pop(str(params.get("trigger_id")), None)
        if trigger is None:
            return {"ok": False, "error": "invalid_trigger_id"}
        user, at = trigger
        if time.monotonic() - at > TRIGGER_SECONDS:
            return {"ok": False, "error": "expired_trigger_id"}
        view = params.get("view")
        if not isinstance(view, dict) or view.get("type") != "modal":
            return {"ok": False, "error": "invalid_arguments"}
        modal = self.ws.open_modal(user, view)
        return {"ok": True, "view": self.ws.view_object(view, view_id=modal.id, user=user)}

    def _m_views_push(self, params: Json) -> Json:
        trigger = self.ws.triggers.pop(str(params.get("trigger_id")), None)
        view = params.get("view")
        if trigger is None or not isinstance(view, dict):
            return {"ok": False, "error": "invalid_trigger_id"}
        modal = self.ws.open_modal(trigger[0], view, push=True)
        return {"ok": True, "view": self.ws.view_object(view, view_id=modal.id, user=trigger[0])}

    def _m_views_update(self, params: Json) -> Json:
        modal = self.ws.find_modal(params.get("view_id"), params.get("external_id"))
        view = params.get("view")
        if modal is None:
            return {"ok": False, "error": "not_found"}
        if not isinstance(view, dict):
            return {"ok": False, "error": "invalid_arguments"}
        if params.get("hash") and params["hash"] != modal.hash:
            return {"ok": False, "error": "hash_conflict"}
        modal.view, modal.errors, modal.hash = view, {}, self.ws.new_id("h")
        return {"ok": True, "view": self.ws.view_object(view, view_id=modal.id, user=modal.user)}

    def _m_views_publish(self, params: Json) -> Json:
        user, view = params.get("user_id"), params.get("view")
        if not isinstance(user, str) or person(user) is None:
            return {"ok": False, "error": "user_not_found"}
        if not isinstance(view, dict) or view.get("type") != "home":
            return {"ok": False, "error": "invalid_arguments"}
        if len(view.get("blocks") or []) > HOME_MAX_BLOCKS:
            return {"ok": False, "error": "invalid_blocks"}
        self.ws.homes[user] = view
        return {"ok": True, "view": self.ws.view_object(view, view_id=f"VH{user}", user=user)}

    def _history(self, channel: str, params: Json, thread: str | None) -> list[Json]:
        metadata = str(params.get("include_all_metadata", "")).lower() in ("1", "true")
        msgs = self.ws.messages.get(channel, [])
        if thread is None:
            picked = [m for m in msgs if m["thread_ts"] is None]
        else:
            picked = [m for m in msgs if m["ts"] == thread or m["thread_ts"] == thread]
        out = []
        for m in picked:
            item = public_message(m)
            if not metadata:
                item.pop("metadata", None)
            out.append(item)
        return out

    def _m_conversations_history(self, params: Json) -> Json:
        channel = params.get("channel")
        if error := self._channel_error(channel):
            return error
        msgs = list(reversed(self._history(str(channel), params, None)))
        return {"ok": True, "messages": msgs, "has_more": False}

    def _m_conversations_replies(self, params: Json) -> Json:
        channel, ts = params.get("channel"), str(params.get("ts"))
        if error := self._channel_error(channel):
            return error
        if self.ws.message(str(channel), ts) is None:
            return {"ok": False, "error": "thread_not_found"}
        return {"ok": True, "messages": self._history(str(channel), params, ts), "has_more": False}

    def _m_usergroups_users_list(self, params: Json) -> Json:
        group = str(params.get("usergroup"))
        if group not in USERGROUPS:
            return {"ok": False, "error": "no_such_subteam"}
        return {"ok": True, "users": list(USERGROUPS[group])}

    def _m_users_info(self, params: Json) -> Json:
        found = person(str(params.get("user")))
        if found is None:
            return {"ok": False, "error": "user_not_found"}
        return {
            "ok": True,
            "user": {
                "id": found.id,
                "team_id": TEAM_ID,
                "name": found.name,
                "real_name": found.name,
            },
        }

    def _m_users_list(self, params: Json) -> Json:
        members = [{"id": p.id, "name": p.name, "team_id": TEAM_ID} for p in PEOPLE]
        return {"ok": True, "members": members}

    # files_upload_v2: getUploadURLExternal -> POST the bytes -> completeUploadExternal

    def _m_files_getUploadURLExternal(self, params: Json) -> Json:
        length = str(params.get("length", ""))
        if not params.get("filename") or not length.isdigit() or int(length) < 1:
            return {"ok": False, "error": "invalid_arguments"}
        file_id = self.ws.new_id("F")
        self.ws.files[file_id] = {
            "id": file_id,
            "name": str(params["filename"]),
            "length": int(length),
            "data": None,
            "done": False,
        }
        base = self.ws.url.removesuffix("api/")
        return {"ok": True, "upload_url": f"{base}upload/{file_id}", "file_id": file_id}

    async def _upload(self, request: web.Request) -> web.Response:
        upload = self.ws.files.get(request.match_info["file_id"])
        data = await request.read()
        if upload is None:
            return web.Response(status=404, text="Not Found")
        upload["data"] = data
        return web.Response(text=f"OK - {len(data)}")

    def _m_files_completeUploadExternal(self, params: Json) -> Json:
        items, channel = params.get("files"), params.get("channel_id")
        if channel is not None and (error := self._channel_error(channel)):
            return error
        if not isinstance(items, list) or not items:
            return {"ok": False, "error": "invalid_arguments"}
        shared = []
        for item in items:
            upload = self.ws.files.get(str(item.get("id")))
            if upload is None or upload["done"] or upload["data"] is None:
                return {"ok": False, "error": "file_not_found"}
            if len(upload["data"]) != upload["length"]:
                return {"ok": False, "error": "file_not_found"}
            upload["title"] = item.get("title") or upload["name"]
            shared.append(upload)
        for upload in shared:
            upload["done"] = True
        files = [{"id": u["id"], "name": u["name"], "title": u["title"]} for u in shared]
        if channel is not None:
            text = params.get("initial_comment") or ""
            self.ws.post(
                str(channel), {"text": text, "thread_ts": params.get("thread_ts"), "files": files}
            )
        return {
            "ok": True,
            "files": [{**f, "size": u["length"]} for f, u in zip(files, shared, strict=True)],
        }
