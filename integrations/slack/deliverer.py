"""The outbox deliverer for topic ``notify``: posts, thread replies and in-place updates.

A row's payload is read with ``workflows.notify.parse_notification`` (rows written
before the events were typed too) and handled by the event's class:

- ``ParentPosted``: a channel message; its ``channel`` and ``ts`` are the row's result,
  which every later row of the rollout reads as its parent. ``ExceptionLapsed`` and
  ``PlanNote`` are channel messages as well.
- thread notes (``ThreadNote``, ``GateOpened``, ``RolloutSummary``, ...): replies under
  the parent's ``ts``.
- ``ParentUpdated`` and ``GateClosed``: ``chat.update`` of the parent row's message (the
  rollout's parent, or the readiness message); idempotent by nature.
- ``RollbackAlert``: a message to the on-call channel mentioning the on-call group, with
  a link to the rollout's thread; ``RollbackAlertUpdate`` re-renders it in place
  (``chat.update``) once the ring's Jira ticket keys are known.

Every posted message carries its outbox key in message metadata (event type
``patchgate_outbox``). Before every post the deliverer looks the key up with
``conversations.history`` / ``conversations.replies`` and returns what it finds instead
of posting again. After a recorded failed attempt (a timeout, a reset connection, a lost
answer) it searches up to ``LOOKUP_PAGES`` pages. On a row's first recorded attempt it
reads the newest page only: the outbox counts an attempt when its outcome is recorded,
not when the row is leased, so a worker that died after Slack accepted the post but
before recording it leaves ``attempts == 0`` behind; that message is among the newest
(the lease is short), and one read call per post is the price of never posting twice.

Errors: HTTP 429 -> transient with ``Retry-After``; 5xx, timeouts, connection errors and
Slack's own transient errors -> transient; ``not_in_channel``, ``channel_not_found``,
``invalid_auth`` and other errors no retry can fix -> permanent (dead letter).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, assert_never

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from integrations.slack import messages
from workflows.errors import PermanentDeliveryError, TransientDeliveryError
from workflows.notify import (
    BatchDone,
    ExceptionLapsed,
    GateClosed,
    GateOpened,
    GateReminder,
    ParentPosted,
    ParentUpdated,
    PatchSetPinned,
    PlanNote,
    RollbackAlert,
    RollbackAlertUpdate,
    RolloutSummary,
    ThreadNote,
    TicketNote,
    ZoneAlert,
    parse_notification,
)
from workflows.outbox import DeliveryItem
from workflows.ports import Delivery

EVENT_TYPE = "patchgate_outbox"
TRANSIENT_ERRORS = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)
LOOKUP_PAGES = 5


def metadata(key: str) -> dict[str, Any]:
    return {"event_type": EVENT_TYPE, "event_payload": {"key": key}}


def translate(exc: BaseException, what: str) -> Exception:
    """A Slack or transport error as PatchGate's transient/permanent delivery error."""
    if isinstance(exc, SlackApiError):
        response = exc.response
        status = getattr(response, "status_code", 200)
        error = response.get("error") if response is not None else None
        if status == 429:
            raw = (getattr(response, "headers", None) or {}).get("Retry-After")
            try:
                retry_after = float(raw) if raw is not None else None
            except ValueError:
                retry_after = None
            return TransientDeliveryError(f"{what}: rate limited", retry_after=retry_after)
        if status >= 500 or error in TRANSIENT_ERRORS:
            return TransientDeliveryError(f"{what}: HTTP {status} {error or ''}".rstrip())
        return PermanentDeliveryError(f"{what}: {error or f'HTTP {status}'}")
    if isinstance(exc, aiohttp.ClientError | TimeoutError | asyncio.TimeoutError):
        return TransientDeliveryError(f"{what}: {type(exc).__name__}: {exc}")
    return TransientDeliveryError(f"{what}: {type(exc).__name__}: {exc}")


def permalink(base: str, channel: str, ts: str) -> str:
    return f"{base.rstrip('/')}/archives/{channel}/p{ts.replace('.', '')}"


class SlackDeliverer:
    def __init__(
        self,
        client: AsyncWebClient,
        *,
        oncall_channel: str | None = None,
        oncall_group: str | None = None,
        workspace_url: str = "https://slack.com",
    ) -> None:
        self.client = client
        self.oncall_channel = oncall_channel
        self.oncall_group = oncall_group
        self.workspace_url = workspace_url

    async def deliver(self, item: DeliveryItem) -> Delivery:
        try:
            event = parse_notification(item.payload)
        except ValueError as exc:  # no retry makes a payload readable
            raise PermanentDeliveryError(f"{item.key}: not a notification: {exc}") from exc
        parent = dict(item.parent.data) if item.parent is not None else None
        match event:
            case ParentUpdated() | GateClosed():
                return await self._update(item, parent, messages.render(event))
            case RollbackAlertUpdate():
                link = parent.get("link") if parent else None
                message = messages.alert(event, group=self.oncall_group, link=link)
                return await self._update(item, parent, message)
            case RollbackAlert():
                return await self._alert(item, event, parent)
            case ZoneAlert():
                if not self.oncall_channel:
                    raise PermanentDeliveryError(
                        f"{item.key}: a zone alert needs PATCHGATE_ONCALL_CHANNEL (not set)"
                    )
                message = messages.zone_alert(event, group=self.oncall_group)
                return await self._post(
                    item, channel=self.oncall_channel, thread_ts=None, message=message
                )
            case (
                ThreadNote()
                | PatchSetPinned()
                | BatchDone()
                | GateReminder()
                | TicketNote()
                | RolloutSummary()
                | GateOpened()
            ):
                if not parent or not parent.get("ts"):
                    raise PermanentDeliveryError(f"{item.key}: the parent message has no ts")
                return await self._post(
                    item,
                    channel=str(parent["channel"]),
                    thread_ts=str(parent["ts"]),
                    message=messages.render(event),
                )
            case ParentPosted() | ExceptionLapsed() | PlanNote():
                if not event.channel:
                    plan = None if isinstance(event, ExceptionLapsed) else event.plan
                    raise PermanentDeliveryError(
                        f"{item.key}: plan {plan!r} names no Slack channel (slack.channel)"
                    )
                return await self._post(
                    item, channel=event.channel, thread_ts=None, message=messages.render(event)
                )
            case _:
                assert_never(event)

    # --- the three shapes --------------------------------------------------------------------

    async def _update(
        self, item: DeliveryItem, parent: Mapping[str, Any] | None, message: Mapping[str, Any]
    ) -> Delivery:
        if not parent or not parent.get("ts"):
            raise PermanentDeliveryError(f"{item.key}: the message to update has no ts")
        try:
            response = await self.client.chat_update(
                channel=str(parent["channel"]), ts=str(parent["ts"]), **message
            )
        except Exception as exc:
            raise translate(exc, f"chat.update {item.key}") from exc
        return Delivery({"channel": response["channel"], "ts": response["ts"], "updated": True})

    async def _alert(
        self, item: DeliveryItem, event: RollbackAlert, parent: Mapping[str, Any] | None
    ) -> Delivery:
        link = None
        if parent and parent.get("ts"):
            link = permalink(self.workspace_url, str(parent["channel"]), str(parent["ts"]))
        channel = self.oncall_channel or event.channel
        if not channel:
            raise PermanentDeliveryError(
                f"{item.key}: no on-call channel (PATCHGATE_ONCALL_CHANNEL) and no plan channel"
            )
        message = messages.alert(event, group=self.oncall_group, link=link)
        posted = await self._post(item, channel=str(channel), thread_ts=None, message=message)
        # kept for later updates of the alert (its Jira keys: rollout.alert.update)
        return Delivery({**posted.data, "link": link})

    async def _post(
        self,
        item: DeliveryItem,
        *,
        channel: str,
        thread_ts: str | None,
        message: Mapping[str, Any],
    ) -> Delivery:
        pages = LOOKUP_PAGES if item.attempts > 0 else 1
        found = await self._find(item.key, channel=channel, thread_ts=thread_ts, pages=pages)
        if found is not None:
            return found
        kwargs: dict[str, Any] = dict(message)
        if thread_ts is not None:
            kwargs["thread_ts"] = thread_ts
        try:
            response = await self.client.chat_postMessage(
                channel=channel, metadata=metadata(item.key), unfurl_links=False, **kwargs
            )
        except Exception as exc:
            raise translate(exc, f"chat.postMessage {item.key}") from exc
        return Delivery({"channel": response["channel"], "ts": response["ts"]})

    async def _find(
        self, key: str, *, channel: str, thread_ts: str | None, pages: int
    ) -> Delivery | None:
        """The message an earlier attempt posted for ``key``, if it landed."""
        cursor: str | None = None
        for _ in range(pages):
            try:
                if thread_ts is None:
                    response = await self.client.conversations_history(
                        channel=channel, include_all_metadata=True, limit=200, cursor=cursor
                    )
                else:
                    response = await self.client.conversations_replies(
                        channel=channel,
                        ts=thread_ts,
                        include_all_metadata=True,
                        limit=200,
                        cursor=cursor,
                    )
            except Exception as exc:
                raise translate(exc, f"looking up {key}") from exc
            for msg in response.get("messages") or []:
                meta = msg.get("metadata") or {}
                if (
                    meta.get("event_type") == EVENT_TYPE
                    and (meta.get("event_payload") or {}).get("key") == key
                ):
                    return Delivery({"channel": channel, "ts": msg["ts"], "found": True})
            cursor = (response.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                return None
        return None
