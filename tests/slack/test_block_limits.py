"""A 500-host ring with many package changes stays inside Block Kit's limits (50 blocks,
3,000 characters per section) and produces a handful of thread messages, not 500.

The engine takes about a minute per backend to patch 500 simulated hosts, so the full
run is ``slow``; the default run renders a 500-host ring's readiness message and summary
through the real deliverer (the emulator rejects what Slack would reject).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from integrations.slack import SlackDeliverer, make_client
from integrations.slack.messages import MAX_BLOCKS, SECTION_LIMIT
from tests.enginekit import APPROVER_1, Rig, make_plan
from tests.fakes.slack_api import SlackEmulator
from tests.slack.conftest import TOKEN, Bot
from workflows.outbox import DeliveryItem
from workflows.ports import Delivery, InventoryHost

HOSTS = 500
PACKAGES = 60


def big_fleet() -> list[InventoryHost]:
    hosts = [InventoryHost(name=f"web-{i:03d}", groups=frozenset({"web"})) for i in range(HOSTS)]
    return [*hosts, InventoryHost(name="db-001", groups=frozenset({"db"}))]


def sections(message: dict[str, Any]) -> list[str]:
    return [
        b["text"]["text"] for b in message["blocks"] if b["type"] == "section" and b.get("text")
    ]


@pytest.mark.slow
async def test_a_500_host_ring_gives_one_readiness_message_within_limits_and_few_notes(
    bot: Bot, slack_api: SlackEmulator
) -> None:
    rig = Rig(bot.rig.db, hosts=big_fleet())
    rig.clock = bot.rig.clock
    for n in range(PACKAGES):
        name = f"lib-{n:03d}-with-a-rather-long-package-name-for-the-list"
        rig.executor.publish(name, "1.0.0-1", "1.0.1-1+deb12u1", security=n % 3 == 0)
        for host in rig.hosts:
            rig.executor.state.hosts[host.name].installed[name] = "1.0.0-1"
    plan = make_plan(
        rings=[
            {"name": "web", "hosts": "group:web", "batch": 100, "failure_budget": 0},
            {
                "name": "db",
                "hosts": "group:db",
                "batch": 1,
                "gate": {"type": "approval", "approvers": {"users": [APPROVER_1]}},
            },
        ]
    )
    await rig.start(plan)
    await rig.engine().run_until_idle()
    await bot.deliver()

    posted = slack_api.posted("C0PATCHES")
    readiness = [m for m in posted if any(b["type"] == "actions" for b in m["blocks"])]
    assert len(readiness) == 1
    message = readiness[0]
    assert len(message["blocks"]) <= MAX_BLOCKS
    assert all(len(text) <= SECTION_LIMIT for text in sections(message))
    text = json.dumps(message["blocks"])
    assert f"Ring web*: {HOSTS} ok" in text
    assert "more packages" in text, "the package list is summarised"
    thread = [m for m in posted if m["thread_ts"] is not None]
    assert 1 < len(thread) <= 12, [m["text"] for m in thread]
    for m in posted:
        assert len(m["blocks"]) <= MAX_BLOCKS
        assert all(len(t) <= SECTION_LIMIT for t in sections(m))


def item(key: str, payload: dict[str, Any], parent: Delivery | None = None) -> DeliveryItem:
    return DeliveryItem(
        id=1, key=key, topic="notify", payload=payload, rollout_id=7, parent=parent, attempts=0
    )


async def test_a_readiness_message_and_summary_for_500_hosts_and_300_packages_fit_block_kit(
    slack_api: SlackEmulator,
) -> None:
    deliverer = SlackDeliverer(make_client(token=TOKEN, base_url=slack_api.url, timeout=2))
    parent = await deliverer.deliver(
        item("r7:parent", {"kind": "rollout.parent", "channel": "C0PATCHES", "text": "weekly"})
    )
    packages = [
        {
            "name": f"lib-{n:03d}-with-a-rather-long-package-name-for-the-list",
            "from": "1.0.0-1",
            "to": "1.0.1-1+deb12u1",
            "advisories": [f"DSA-{5000 + n}-1", f"CVE-2025-{10000 + n}"],
        }
        for n in range(300)
    ]
    counts = {"healthy": 480, "failed": 12, "rolled_back": 8}
    await deliverer.deliver(
        item(
            "r7:gate:1",
            {
                "kind": "gate.opened",
                "thread": True,
                "rollout_id": 7,
                "gate_id": 1,
                "patchset_hash": "ab" * 32,
                "text": "Approval needed before ring prod (2000 hosts), quorum 2",
                "previous_ring": {"ring": "web", "counts": counts, "duration_seconds": 3600},
                "packages": packages,
                "untested_platforms": [f"debian-{n}" for n in range(400)],
            },
            parent,
        )
    )
    await deliverer.deliver(
        item(
            "r7:summary",
            {
                "kind": "rollout.note",
                "thread": True,
                "text": "Rollout #7 finished",
                "summary": {"counts": counts, "packages": packages, "duration_seconds": 7200},
            },
            parent,
        )
    )
    replies = [m for m in slack_api.posted("C0PATCHES") if m["thread_ts"]]
    assert len(replies) == 2, "both were accepted: the emulator refuses what Slack refuses"
    for message in replies:
        assert len(message["blocks"]) <= MAX_BLOCKS
        assert all(len(text) <= SECTION_LIMIT for text in sections(message))
        assert "more packages" in json.dumps(message["blocks"])
    assert any(b["type"] == "actions" for b in replies[0]["blocks"]), "buttons kept"
