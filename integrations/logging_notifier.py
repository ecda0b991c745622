"""The headless notifier: notifications are logged instead of sent.

Used when Slack is not configured (``patchgate serve`` without a bot token), so rollouts
can run and be watched from the logs. Registered as the outbox deliverer for the
notification topics.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from workflows.notify import parse_notification
from workflows.outbox import DeliveryItem
from workflows.ports import Delivery

log = logging.getLogger("patchgate.notify")


def _text(payload: Mapping[str, Any]) -> str | None:
    """A notification's text (every event has one); a row of another shape (a topic this
    notifier was registered for by hand) is logged by its ``text`` key, if it has one."""
    if "type" in payload or "kind" in payload:
        return parse_notification(payload).text
    text = payload.get("text")
    return str(text) if text is not None else None


class LoggingDeliverer:
    """Logs the notification's text at INFO and reports it as delivered."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.log = logger or log

    async def deliver(self, item: DeliveryItem) -> Delivery:
        text = _text(item.payload)
        self.log.info(
            "[%s] %s",
            item.topic,
            text if text is not None else f"(no text; outbox key {item.key})",
        )
        return Delivery({"logged": True, "key": item.key})
