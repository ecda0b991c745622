"""The Bolt middleware every HTTP request from Slack goes through before any listener.

``bot.slack.app`` installs :class:`HttpGuard` as Bolt's ``before_authorize`` middleware
(after Bolt's ``ssl_check``, which answers Slack's unsigned certificate check, and with
Bolt's own request verification off: this middleware is the verification). It refuses,
with PatchGate's audited reasons (``bot.slack.security``), requests with missing headers,
a stale timestamp, a wrong signature or a signature accepted before; everything else
goes on through Bolt (``next()``), except a request acted on after its ack
(``bot.slack.journal``): it is journaled in the replay guard's insert, durable before the
answer, which this middleware gives itself (200, empty, as Bolt's ``ack()`` would) and
hands the request to the journal to be processed after the ack. A listener's answer to
such a click would be the same empty 200, and authorizing, matching and running a
listener for it would only delay the ack.

Socket Mode envelopes carry no signature (the socket is authenticated): they pass.
"""

from __future__ import annotations

import json
import re
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping

from slack_bolt.middleware.async_middleware import AsyncMiddleware
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse

from bot.slack.deps import Quiet
from bot.slack.journal import Journal, Journaled, classify
from bot.slack.security import Refusal, RefusalAudit, ReplayGuard, check_signature

# Slack's payloads nest a dozen levels at most; Python's json recurses per level, and a
# payload of 5000 brackets was a RecursionError (a 500)
MAX_DEPTH = 100
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_BRACKET = re.compile(r"[\[\]{}]")


def malformed(body: bytes, content_type: str | None) -> str | None:
    """Why Bolt cannot take ``body``, or None: not UTF-8, or the JSON it carries (what
    Bolt's ``parse_body`` would parse: a JSON body, or a form's ``payload=``) is not
    JSON, nested deeper than ``MAX_DEPTH`` (checked before parsing, by counting brackets
    outside strings, so parsing cannot recurse), or not an object. Bolt builds its
    context with ``body.get``: a payload of ``[]`` or ``1`` was an AttributeError."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return "the body is not UTF-8"
    if (content_type or "").split(";")[0] == "application/json" or text.startswith("{"):
        carried: str | None = text
    elif "payload" in text:
        carried = dict(urllib.parse.parse_qsl(text, keep_blank_values=True)).get("payload")
    else:
        return None
    if not carried:
        return None if carried is None or carried is text else "an empty payload"
    depth = deepest = 0
    for bracket in _BRACKET.findall(_STRING.sub("", carried)):
        depth += 1 if bracket in "[{" else -1
        deepest = max(deepest, depth)
        if deepest > MAX_DEPTH:
            return f"the payload nests more than {MAX_DEPTH} levels"
    try:
        payload = json.loads(carried)
    except (ValueError, RecursionError) as exc:
        return type(exc).__name__
    if not isinstance(payload, dict):
        return f"the payload is a JSON {type(payload).__name__}, not an object"
    return misshapen(payload)


# The fields Slack's payloads carry that Bolt (building its context, matching listeners)
# and PatchGate's listeners read as objects, lists of objects or text, e.g.
# ``body.get("event", {}).get("type")``: any other JSON there was a 500 from inside Bolt.
# (Not "text": a message's is text, a button's an object.)
_OBJECTS = ("event", "team", "user", "channel", "container", "enterprise", "view", "message")
_OBJECTS_TOO = ("previous_message", "item", "assistant_thread", "function_data", "state")
_LISTS = ("actions", "authorizations")
_TEXTS = ("type", "subtype", "team_id", "user_id", "channel_id", "enterprise_id", "api_app_id")
_TEXTS_TOO = ("token", "trigger_id", "response_url", "command", "callback_id")
_TEXTS_TOO_TOO = ("action_id", "block_id", "thread_ts", "user_team", "function_execution_id")


def misshapen(payload: dict[str, object], depth: int = 0) -> str | None:
    """Which of the fields above is of another JSON type, or None (null passes: Slack
    sends ``"enterprise": null``). The objects' own fields are checked to two levels."""
    for key in _OBJECTS + _OBJECTS_TOO:
        value = payload.get(key)
        if value is None or (isinstance(value, str) and depth > 0):
            continue  # an event's "user" and "channel" are ids
        if not isinstance(value, dict):
            return f"{key!r} is not an object"
        if depth < 2 and (problem := misshapen(value, depth + 1)) is not None:
            return f"{key}.{problem}"
    for key in _LISTS:
        if key not in payload:
            continue
        value = payload[key]
        if not (isinstance(value, list) and all(isinstance(v, dict) for v in value)):
            return f"{key!r} is not a list of objects"
        for item in value:
            if depth < 2 and (problem := misshapen(item, depth + 1)) is not None:
                return f"{key}[].{problem}"
    for key in _TEXTS + _TEXTS_TOO + _TEXTS_TOO_TOO:
        value = payload.get(key)
        if value is not None and not isinstance(value, str):
            return f"{key!r} is not text"
    return None


class HttpGuard(AsyncMiddleware):
    """Signature, timestamp, replay and the ack journal; refusals audited."""

    def __init__(
        self,
        secret: str,
        replay: ReplayGuard,
        refusals: RefusalAudit,
        journal: Journal,
        *,
        quiet: Quiet,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.secret = secret
        self.replay = replay
        self.refusals = refusals
        self.journal = journal
        self.quiet = quiet  # requests waiting for their answer (counted by bot.server)
        self.wall = wall

    async def async_process(
        self,
        *,
        req: AsyncBoltRequest,
        resp: BoltResponse,
        next: Callable[[], Awaitable[BoltResponse]],
    ) -> BoltResponse | None:
        if req.mode == "socket_mode":
            return await next()
        refusal, journaled = await self.admit(req)
        if refusal is not None:
            return BoltResponse(status=refusal.status, body={"error": refusal.reason})
        if journaled is not None:
            # Durable in the journal: answered now, processed after the ack.
            self.journal.accept(journaled, req.body)
            return BoltResponse(status=200, body="")
        return await next()

    async def admit(self, req: AsyncBoltRequest) -> tuple[Refusal | None, Journaled | None]:
        """(refusal, None); or (None, the journal entry) for a request journaled before
        the ack, to be processed after it; or (None, None)."""
        headers = {
            "X-Slack-Request-Timestamp": _header(req, "x-slack-request-timestamp"),
            "X-Slack-Signature": _header(req, "x-slack-signature"),
        }
        kind = classify(req.body)
        refusal = await self._admit(headers, req.raw_body.encode(), kind, req.raw_body)
        if refusal is not None or kind is None:
            return refusal, None
        return None, Journaled(headers["X-Slack-Signature"], kind)

    async def refuse_unparsable(self, headers: Mapping[str, str], body: bytes, why: str) -> Refusal:
        """A body Bolt cannot parse (``bot.server`` calls this, as Bolt never sees it;
        ``why``: see :func:`malformed`): refused as not authenticated if it is not, else a
        signed ``malformed_payload``."""
        checked = {
            h: headers.get(h, "") for h in ("X-Slack-Request-Timestamp", "X-Slack-Signature")
        }
        refusal = await self._admit(checked, body, None, "")
        if refusal is not None:
            return refusal
        await self.refusals.signed("malformed_payload", why, user=None)
        return Refusal(400, "malformed_payload", why)

    async def refuse_misshapen(self, error: Exception) -> Refusal:
        """A signed request (checked, and recorded against replay) whose shape Bolt
        could not match to a listener (``bot.server`` calls this when Bolt raised): the
        fields :func:`misshapen` does not know about."""
        why = f"{type(error).__name__} while Bolt matched it"
        await self.refusals.signed("malformed_payload", why, user=None)
        return Refusal(400, "malformed_payload", why)

    async def refuse_oversized(self, size: int | None) -> None:
        """A body over the server's limit (``bot.server`` calls this: it is never read)."""
        await self.refusals.unauthenticated(Refusal(413, "oversized", f"body of {size} bytes"))

    async def _admit(
        self, headers: dict[str, str], body: bytes, kind: str | None, text: str
    ) -> Refusal | None:
        refusal = check_signature(headers, body, secret=self.secret, now=self.wall())
        if refusal is None:
            entry = None if kind is None else (kind, text)
            if not await self.replay.first_sighting(headers["X-Slack-Signature"], entry):
                refusal = Refusal(401, "replay", "this signature was accepted before")
        if refusal is not None:
            await self.refusals.unauthenticated(refusal)
        return refusal


def _header(req: AsyncBoltRequest, name: str) -> str:
    """A header as Bolt keeps them (lower-case names, lists of values)."""
    values = req.headers.get(name) or [""]
    return values[0] or ""
