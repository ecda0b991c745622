"""Outbox rows written before notifications were typed (a ``kind`` string, no ``type``)
are still pending in databases after an upgrade: the Slack deliverer reads and delivers
them exactly as the old code did.

``tests/fixtures/notify/old_shape_rows.json`` holds old payloads of every kind the
``notify`` topic carried, each with the Slack message the old renderer made of it.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from integrations.slack import SlackDeliverer, make_client
from tests.fakes.slack_api import SlackEmulator
from tests.slack.conftest import TOKEN
from workflows import notify, outbox
from workflows.db import Database, read_only, unit_of_work
from workflows.models import OutboxItem

ROWS: list[dict[str, Any]] = json.loads(
    (Path(__file__).parent.parent / "fixtures" / "notify" / "old_shape_rows.json").read_text()
)
T0 = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC)
PARENT_TS = "1700000000.000001"  # the emulator's first post; the old alert's link names it


async def settle(db: Database, worker: outbox.OutboxWorker) -> list[OutboxItem]:
    """Run the worker until nothing is pending (a rollout's rows go one at a time)."""
    for _ in range(50):
        async with read_only(db) as session:
            rows = list(await session.scalars(sa.select(OutboxItem).order_by(OutboxItem.id)))
        if all(r.state != "pending" for r in rows):
            break
        await worker.run_once()
    return rows


async def enqueue(db: Database, rows: list[dict[str, Any]]) -> None:
    async with unit_of_work(db) as session:
        for i, row in enumerate(rows):
            await outbox.enqueue(
                session,
                key=row["key"],
                topic=notify.TOPIC,
                payload=row["payload"],
                at=T0 + dt.timedelta(seconds=i),
                rollout_id=row["payload"].get("rollout_id"),
                parent_key=row["parent_key"],
            )


async def test_pending_rows_of_the_old_shape_are_delivered_as_before(
    db: Database, slack_api: SlackEmulator
) -> None:
    deliverer = SlackDeliverer(
        make_client(token=TOKEN, base_url=slack_api.url, timeout=2),
        oncall_channel="C0ONCALL",
        oncall_group="S0ONCALL",
    )
    worker = outbox.OutboxWorker(
        db, {notify.TOPIC: deliverer}, clock=lambda: T0 + dt.timedelta(hours=1), owner="w"
    )
    assert all("kind" in r["payload"] and "type" not in r["payload"] for r in ROWS)
    await enqueue(db, ROWS[:1])  # the parent first: the alert's link names its ts
    await settle(db, worker)
    await enqueue(db, ROWS[1:])
    rows = {r.key: r for r in await settle(db, worker)}

    assert {r.state for r in rows.values()} == {"delivered"}, {
        k: r.last_error for k, r in rows.items() if r.state != "delivered"
    }
    assert rows[ROWS[0]["key"]].result == {"channel": "C0PATCHES", "ts": PARENT_TS}
    final: dict[tuple[str, str], dict[str, Any]] = {}
    for row in ROWS:  # an update's message replaces its target's
        result = rows[row["key"]].result or {}
        final[(result["channel"], result["ts"])] = row["message"]
    for (channel, ts), expected in final.items():
        posted = slack_api.message(channel, ts)
        assert posted is not None
        assert (posted["text"], posted["blocks"]) == (expected["text"], expected["blocks"])
    threaded = {
        m["metadata"]["event_payload"]["key"]
        for m in slack_api.posted("C0PATCHES")
        if m["thread_ts"] == PARENT_TS
    }
    assert threaded == {r["key"] for r in ROWS if r["payload"].get("thread")}, (
        "thread notes went to the parent's thread, nothing else did"
    )
    (alert,) = slack_api.posted("C0ONCALL")
    assert alert["metadata"]["event_payload"]["key"].endswith(":rollback")
    assert alert["updates"] == 1
