"""Socket Mode envelopes of a shape Bolt cannot take: refused before Bolt sees them.

slack_sdk's ``SocketModeClient`` parses each WebSocket message and runs its message
listeners (this one) before it builds a ``SocketModeRequest`` for Bolt. An envelope whose
``payload`` is not an object, nests deeper than ``bot.slack.guard.MAX_DEPTH``, has a field
Bolt reads as an object, list or text of another JSON type (``bot.slack.guard.misshapen``),
or whose ``envelope_id`` is not text, is acked (when it has an id: Slack would send it
again otherwise) with no payload, audited as ``slack.request.refused`` with reason
``malformed_payload`` (the socket is authenticated: one event each, as a signed HTTP
request), and withdrawn from dispatch by removing its ``payload`` (slack_sdk builds no
request from a message without one). Before, such an envelope raised inside slack_sdk or
Bolt (a ``ValueError`` for a list payload, an ``AttributeError`` in Bolt's context, a
``RecursionError`` in Bolt's deep copy), was logged with a traceback and never acked.

A WebSocket message that is not JSON at all, or whose numbers exceed Python's
4,300-digit limit, fails in slack_sdk's own ``json.loads`` before any listener: it has no
envelope id to ack, slack_sdk logs it and goes on reading (a test sends such messages and
a valid command after them).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from bot.slack.guard import MAX_DEPTH, misshapen
from bot.slack.security import RefusalAudit

log = logging.getLogger("patchgate.slack")

ENVELOPE_TYPES = frozenset({"slash_commands", "interactive", "events_api"})
MAX_ENVELOPE_ID = 200


def deeper_than(value: object, limit: int) -> bool:
    """True if ``value`` (parsed JSON) nests more than ``limit`` levels; no recursion."""
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def envelope_problem(message: dict[str, Any]) -> str | None:
    """Why this envelope is refused, or None (also None for a message that is not an
    envelope: ``hello``, ``disconnect``)."""
    kind = message.get("type")
    if kind not in ENVELOPE_TYPES and "envelope_id" not in message:
        return None
    envelope_id = message.get("envelope_id")
    if not isinstance(envelope_id, str) or not 0 < len(envelope_id) <= MAX_ENVELOPE_ID:
        return "the envelope_id is not text of 1 to 200 characters"
    if kind not in ENVELOPE_TYPES:
        return f"the envelope type {str(kind)[:40]!r} is not one Slack sends"
    payload = message.get("payload")
    if not isinstance(payload, dict):
        return f"the payload is a JSON {type(payload).__name__}, not an object"
    if deeper_than(payload, MAX_DEPTH):
        return f"the payload nests more than {MAX_DEPTH} levels"
    if kind == "slash_commands":
        for key in ("text", "command", "user_id", "channel_id", "trigger_id"):
            if not isinstance(payload.get(key, ""), str):
                return f"{key!r} is not text"
    return misshapen(payload)


def envelope_guard(refusals: RefusalAudit) -> Callable[[Any, dict[str, Any], str], Awaitable[None]]:
    """The message listener: ``client.message_listeners.append(envelope_guard(...))``."""

    async def listener(client: Any, message: dict[str, Any], raw_message: str) -> None:
        why = envelope_problem(message)
        if why is None:
            return
        message.pop("payload", None)  # withdrawn: slack_sdk dispatches nothing without it
        await refusals.signed("malformed_payload", f"Socket Mode envelope: {why}", user=None)
        envelope_id = message.get("envelope_id")
        if isinstance(envelope_id, str) and 0 < len(envelope_id) <= MAX_ENVELOPE_ID:
            await client.send_socket_mode_response({"envelope_id": envelope_id})

    return listener
