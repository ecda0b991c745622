"""The headless notifier: notifications are logged instead of sent.

Used when Slack is not configured (``patchgate serve`` without a bot token), so rollouts
can run and be watched from the logs. Registered as the outbox deliverer for the
notification topics.
"""

from __future__ import annotations

import logging

from workflows.outbox import DeliveryItem
from workflows.ports import Delivery

log = logging.getLogger("patchgate.notify")


class LoggingDeliverer:
    """Logs ``payload["text"]`` at INFO and reports it as delivered."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.log = logger or log

    async def deliver(self, item: DeliveryItem) -> Delivery:
        text = item.payload.get("text")
        self.log.info(
            "[%s] %s",
            item.topic,
            text if text is not None else f"(no text; outbox key {item.key})",
        )
        return Delivery({"logged": True, "key": item.key})
