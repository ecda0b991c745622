"""The outbox worker's step hook (the crash harness's kill points in the worker): where
``outbox.claimed`` and ``outbox.returned`` fall. A hook that raises stands in for the
SIGKILL the harness sends there: whatever it finds persisted is what a new leader finds."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from integrations.testing.deliverers import RecordingDeliverer
from tests.unit.test_outbox_helpers import FakeClock, put, row
from workflows import outbox
from workflows.db import Database

TOPIC = "slack.post"


class Killed(Exception):
    """Raised by the hook at its step, as the harness's SIGKILL stops the worker there."""


def killing_at(target: str, seen: list[str]) -> Callable[[str], None]:
    def hook(step: str) -> None:
        seen.append(step)
        if step == target:
            raise Killed(step)

    return hook


async def test_an_undisturbed_row_passes_claimed_then_returned_once(db: Database) -> None:
    await put(db, "a", rollout_id=1)
    seen: list[str] = []
    worker = outbox.OutboxWorker(
        db, {TOPIC: RecordingDeliverer()}, clock=FakeClock(), owner="w", hook=seen.append
    )
    assert await worker.run_once() == 1
    assert seen == ["outbox.claimed", "outbox.returned"]


async def test_at_claimed_the_lease_is_committed_and_nothing_was_delivered(db: Database) -> None:
    await put(db, "a", rollout_id=1)
    rec, seen = RecordingDeliverer(), list[str]()
    hook = killing_at("outbox.claimed", seen)
    worker = outbox.OutboxWorker(db, {TOPIC: rec}, clock=FakeClock(), owner="w", hook=hook)
    with pytest.raises(Killed):
        await worker.run_once()
    stored = await row(db, "a")
    assert (stored.state, stored.lease_owner, stored.attempts) == ("pending", "w", 0)
    assert rec.keys == []


async def test_at_returned_the_delivery_landed_and_its_result_is_not_recorded(
    db: Database,
) -> None:
    await put(db, "a", rollout_id=1)
    rec, seen = RecordingDeliverer(), list[str]()
    hook = killing_at("outbox.returned", seen)
    worker = outbox.OutboxWorker(db, {TOPIC: rec}, clock=FakeClock(), owner="w", hook=hook)
    assert await worker.run_once() == 0  # the "kill" came before the result was written
    assert rec.keys == ["a"]
    stored = await row(db, "a")
    assert (stored.state, stored.lease_owner, stored.attempts) == ("pending", "w", 0)
    assert stored.result is None
    assert seen == ["outbox.claimed", "outbox.returned"]
