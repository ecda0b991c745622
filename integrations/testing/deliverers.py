"""A recording outbox deliverer for tests: remembers what it delivered, fails on request.

    recorder = RecordingDeliverer()
    recorder.fail_transiently(key="r1:post", times=2, retry_after=30)
    recorder.fail_permanently(topic="jira.create", message="400 Bad Request")
    worker = OutboxWorker(db, {"slack.post": recorder, "jira.create": recorder}, ...)
    ...
    assert recorder.keys == ["r1:post"]
    assert recorder.attempts["r1:post"] == 3

Failure rules match by key first, then by topic. A transient rule fails ``times``
attempts and is then used up; a permanent rule fails every attempt until cleared.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from workflows.errors import PermanentDeliveryError, TransientDeliveryError
from workflows.outbox import DeliveryItem
from workflows.ports import Delivery


@dataclass(frozen=True)
class Delivered:
    """One successful delivery as the recorder saw it."""

    key: str
    topic: str
    payload: Mapping[str, Any]
    parent: Delivery | None
    rollout_id: int | None
    seq: int  # 1 for the first delivery this recorder made, then 2, ...


@dataclass
class _TransientRule:
    remaining: int
    retry_after: float | None
    message: str


class RecordingDeliverer:
    """Implements ``workflows.outbox.Deliverer``; returns ``Delivery({"seq": n})``."""

    def __init__(self, *, delay: float = 0.0) -> None:
        self.delay = delay  # seconds each attempt takes (lets concurrent workers interleave)
        self.delivered: list[Delivered] = []
        self.attempts: Counter[str] = Counter()  # every attempt per key, failed ones included
        self._transient: dict[str, _TransientRule] = {}
        self._permanent: dict[str, str] = {}

    # -- telling it to fail ---------------------------------------------------------------------

    def fail_transiently(
        self,
        *,
        key: str | None = None,
        topic: str | None = None,
        times: int = 1,
        retry_after: float | None = None,
        message: str = "simulated transient failure",
    ) -> None:
        """The next ``times`` attempts for this key (or topic) raise TransientDeliveryError."""
        self._transient[_target(key, topic)] = _TransientRule(times, retry_after, message)

    def fail_permanently(
        self,
        *,
        key: str | None = None,
        topic: str | None = None,
        message: str = "simulated permanent failure",
    ) -> None:
        """Every attempt for this key (or topic) raises PermanentDeliveryError until cleared."""
        self._permanent[_target(key, topic)] = message

    def clear_failures(self) -> None:
        self._transient.clear()
        self._permanent.clear()

    # -- what it recorded -------------------------------------------------------------------------

    @property
    def keys(self) -> list[str]:
        return [d.key for d in self.delivered]

    def for_key(self, key: str) -> list[Delivered]:
        return [d for d in self.delivered if d.key == key]

    # -- the Deliverer protocol --------------------------------------------------------------------

    async def deliver(self, item: DeliveryItem) -> Delivery:
        self.attempts[item.key] += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        for target in (f"key:{item.key}", f"topic:{item.topic}"):
            if target in self._permanent:
                raise PermanentDeliveryError(self._permanent[target])
            rule = self._transient.get(target)
            if rule is not None and rule.remaining > 0:
                rule.remaining -= 1
                raise TransientDeliveryError(rule.message, retry_after=rule.retry_after)
        seq = len(self.delivered) + 1
        self.delivered.append(
            Delivered(
                key=item.key,
                topic=item.topic,
                payload=dict(item.payload),
                parent=item.parent,
                rollout_id=item.rollout_id,
                seq=seq,
            )
        )
        return Delivery({"seq": seq})


def _target(key: str | None, topic: str | None) -> str:
    if (key is None) == (topic is None):
        raise ValueError("give exactly one of key= or topic=")
    return f"key:{key}" if key is not None else f"topic:{topic}"
