"""What a person does on the page, sent to ``serve``'s ``/slack/events`` as Slack sends it.

Slash commands are form posts; ``block_actions`` and ``view_submission`` are form posts
of one ``payload=`` JSON field; ``app_home_opened`` is an Events API JSON body. Every one
is signed with the signing secret (``X-Slack-Signature: v0=HMAC-SHA256(v0:ts:body)``,
``X-Slack-Request-Timestamp``) by ``slack_sdk.signature``, exactly as Slack signs it.
``serve``'s answers are handled as Slack handles them: a command's response body is an
ephemeral reply (or an in-channel message), a submission's ``response_action`` shows
field errors, updates, pushes or closes the modal.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any

import aiohttp
from slack_sdk.signature import SignatureVerifier

from bot.console.people import APP_ID, CHANNELS, TEAM_ID, person
from bot.console.workspace import Json, Workspace, public_message

log = logging.getLogger("patchgate.console")

LEGACY_TOKEN = "console-verification-token"  # Slack's deprecated verification token


class RelayError(Exception):
    """A person's action the console cannot send (unknown person, message or button)."""


@dataclass
class Answer:
    status: int
    body: str
    content_type: str

    def json(self) -> Json | None:
        if not self.body.strip().startswith("{"):
            return None
        try:
            value = json.loads(self.body)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None


def _user(user_id: str) -> Json:
    found = person(user_id)
    if found is None:
        raise RelayError(f"unknown person {user_id!r}")
    return {"id": found.id, "username": found.name, "name": found.name, "team_id": TEAM_ID}


def _find_element(blocks: list[Any], block_id: str, action_id: str) -> Json | None:
    for block in blocks:
        if not isinstance(block, dict):
            continue
        elements = list(block.get("elements") or [])
        if block.get("accessory"):
            elements.append(block["accessory"])
        if block.get("element"):
            elements.append(block["element"])
        for element in elements:
            if (
                isinstance(element, dict)
                and element.get("action_id") == action_id
                and (block.get("block_id", "") == block_id or not block_id)
            ):
                return {**element, "_block_id": block.get("block_id", "")}
    return None


def _state(values: Json) -> Json:
    """``view.state.values`` from the page's {block_id: {action_id: {type, value…}}}."""
    out: Json = {}
    for block_id, actions in (values or {}).items():
        if isinstance(actions, dict):
            out[str(block_id)] = {str(a): v for a, v in actions.items() if isinstance(v, dict)}
    return out


class Relay:
    """Sends the page's actions to ``serve`` (``events_url``), signed with ``secret``."""

    def __init__(self, workspace: Workspace, *, events_url: str, secret: str, page_url: str):
        self.ws = workspace
        self.events_url = events_url
        self.signer = SignatureVerifier(secret)
        self.page_url = page_url.rstrip("/")
        self.responses: dict[str, tuple[str, str, str | None]] = {}  # id -> user, chan, ts
        self.session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()

    async def send(self, body: str, content_type: str, *, signed: bool = True) -> Answer:
        if self.session is None:
            self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        headers = {"Content-Type": content_type}
        if signed:
            ts = str(int(time.time()))
            signature = self.signer.generate_signature(timestamp=ts, body=body)
            assert signature is not None
            headers |= {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": signature}
        async with self.session.post(self.events_url, data=body.encode(), headers=headers) as r:
            return Answer(r.status, await r.text(), r.content_type)

    def _response_url(self, user: str, channel: str, ts: str | None) -> str:
        key = secrets.token_urlsafe(12)
        self.responses[key] = (user, channel, ts)
        return f"{self.page_url}/console/respond/{key}"

    def _payload(self, kind: str, user: str) -> Json:
        return {
            "type": kind,
            "team": {"id": TEAM_ID, "domain": "patchgate-console"},
            "user": _user(user),
            "api_app_id": APP_ID,
            "token": LEGACY_TOKEN,
            "trigger_id": self.ws.trigger_for(user),
            "is_enterprise_install": False,
            "enterprise": None,
        }

    async def _interact(self, payload: Json) -> Answer:
        body = urllib.parse.urlencode({"payload": json.dumps(payload)})
        return await self.send(body, "application/x-www-form-urlencoded")

    # --- slash commands -------------------------------------------------------------------

    async def command(self, user: str, channel: str, text: str) -> Answer:
        who = _user(user)
        name = CHANNELS.get(channel, "directmessage")
        body = urllib.parse.urlencode(
            {
                "token": LEGACY_TOKEN,
                "team_id": TEAM_ID,
                "team_domain": "patchgate-console",
                "channel_id": channel,
                "channel_name": name,
                "user_id": who["id"],
                "user_name": who["name"],
                "command": "/patch",
                "text": text,
                "api_app_id": APP_ID,
                "is_enterprise_install": "false",
                "response_url": self._response_url(user, channel, None),
                "trigger_id": self.ws.trigger_for(user),
            }
        )
        answer = await self.send(body, "application/x-www-form-urlencoded")
        self.ws.say_ephemeral(channel, user, {"text": f"/patch {text}", "echo": True})
        if answer.status != 200:
            self.ws.say_ephemeral(
                channel,
                user,
                {"text": f'/patch failed with the error "dispatch_failed" ({answer.status})'},
            )
        elif (reply := answer.json()) is not None:
            self._reply(user, channel, None, reply)
        elif answer.body.strip():
            self.ws.say_ephemeral(channel, user, {"text": answer.body})
        await self.ws.changed()
        return answer

    def _reply(self, user: str, channel: str, ts: str | None, reply: Json) -> None:
        """A command's response body or a response_url post, as Slack shows it."""
        if reply.get("delete_original") and ts is not None:
            msgs = self.ws.messages.get(channel, [])
            self.ws.messages[channel] = [m for m in msgs if m["ts"] != ts]
            return
        if not reply.get("text") and not reply.get("blocks"):
            return
        original = self.ws.message(channel, ts) if ts else None
        if reply.get("replace_original") and original is not None:
            original.update(text=reply.get("text") or "", blocks=reply.get("blocks") or [])
        elif reply.get("response_type") == "in_channel":
            self.ws.post(channel, reply)
        else:
            self.ws.say_ephemeral(channel, user, reply)

    async def respond(self, key: str, reply: Json) -> bool:
        where = self.responses.get(key)
        if where is None:
            return False
        self._reply(*where, reply)
        await self.ws.changed()
        return True

    # --- buttons ----------------------------------------------------------------------------

    async def click_message(
        self, user: str, channel: str, ts: str, block_id: str, action_id: str
    ) -> Answer:
        msg = self.ws.message(channel, ts)
        if msg is None:
            raise RelayError("that message is gone")
        element = _find_element(msg["blocks"], block_id, action_id)
        if element is None:
            raise RelayError("that button is gone")
        payload = self._payload("block_actions", user)
        payload |= {
            "container": {
                "type": "message",
                "message_ts": ts,
                "channel_id": channel,
                "is_ephemeral": False,
                **({"thread_ts": msg["thread_ts"]} if msg.get("thread_ts") else {}),
            },
            "channel": {"id": channel, "name": CHANNELS.get(channel, "directmessage")},
            "message": public_message(msg),
            "state": {"values": {}},
            "response_url": self._response_url(user, channel, ts),
            "actions": [_action(element)],
        }
        return await self._interact(payload)

    async def click_view(
        self, user: str, view_id: str, block_id: str, action_id: str, values: Json
    ) -> Answer:
        if view_id == f"VH{user}" and user in self.ws.homes:
            view = self.ws.homes[user]
            container = {"type": "view", "view_id": view_id}
        else:
            modal = self.ws.find_modal(view_id)
            if modal is None or modal.user != user:
                raise RelayError("that view is closed")
            view = modal.view
            container = {"type": "view", "view_id": view_id}
        element = _find_element(view.get("blocks") or [], block_id, action_id)
        if element is None:
            raise RelayError("that button is gone")
        payload = self._payload("block_actions", user)
        view_object = self.ws.view_object(view, view_id=view_id, user=user)
        view_object["state"] = {"values": _state(values)}
        payload |= {"container": container, "view": view_object, "actions": [_action(element)]}
        return await self._interact(payload)

    # --- modals -------------------------------------------------------------------------------

    async def submit(self, user: str, view_id: str, values: Json) -> Answer:
        modal = self.ws.find_modal(view_id)
        if modal is None or modal.user != user:
            raise RelayError("that form is closed")
        payload = self._payload("view_submission", user)
        view_object = self.ws.view_object(modal.view, view_id=modal.id, user=user, hash_=modal.hash)
        view_object["state"] = {"values": _state(values)}
        payload |= {"view": view_object, "response_urls": []}
        answer = await self._interact(payload)
        reply = answer.json() if answer.status == 200 else None
        action = (reply or {}).get("response_action")
        if answer.status != 200:
            modal.errors = {"": f"PatchGate answered {answer.status}: not submitted"}
        elif action == "errors":
            errors = reply.get("errors") if reply else None
            modal.errors = {str(k): str(v) for k, v in (errors or {}).items()}
        elif action == "update" and reply and isinstance(reply.get("view"), dict):
            modal.view, modal.errors = reply["view"], {}
        elif action == "push" and reply and isinstance(reply.get("view"), dict):
            self.ws.open_modal(user, reply["view"], push=True)
        elif action == "clear":
            self.ws.modals.pop(user, None)
        else:
            stack = self.ws.modals.get(user, [])
            self.ws.modals[user] = [m for m in stack if m.id != view_id]
        await self.ws.changed()
        return answer

    async def close_modal(self, user: str, view_id: str) -> None:
        stack = self.ws.modals.get(user, [])
        self.ws.modals[user] = [m for m in stack if m.id != view_id]
        await self.ws.changed()

    # --- App Home -----------------------------------------------------------------------------

    async def open_home(self, user: str) -> Answer:
        _user(user)
        body = json.dumps(
            {
                "token": LEGACY_TOKEN,
                "team_id": TEAM_ID,
                "api_app_id": APP_ID,
                "type": "event_callback",
                "event_id": f"Ev{secrets.token_hex(6).upper()}",
                "event_time": int(time.time()),
                "event": {
                    "type": "app_home_opened",
                    "user": user,
                    "channel": f"D{user[1:]}",
                    "tab": "home",
                    "event_ts": f"{time.time():.6f}",
                },
                "authorizations": [{"team_id": TEAM_ID, "user_id": user, "is_bot": False}],
            }
        )
        return await self.send(body, "application/json")


def _action(element: Json) -> Json:
    action = {
        "type": element.get("type", "button"),
        "action_id": element.get("action_id"),
        "block_id": element.get("_block_id", ""),
        "action_ts": f"{time.time():.6f}",
    }
    for key in ("text", "value", "style"):
        if key in element:
            action[key] = element[key]
    return action
