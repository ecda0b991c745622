"""/patch hosts, assess and emergency, and coverage gaps in /patch status and App Home:
parsed purely, then run through the real app against the Slack emulator and a real
database (the CLI's functions underneath)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import threading
from collections.abc import Mapping
from typing import Any

import pytest
import sqlalchemy as sa
from ruamel.yaml import YAML

from bot.slack.commands.discovery import Assess, Emergency, Hosts
from bot.slack.commands.handlers import default_registry
from bot.slack.commands.parser import parse
from bot.slack.commands.registry import UsageError
from tests.enginekit import OUTSIDER, REQUESTER, StaticInventory, plan_dict
from tests.fakes.slack_api import SlackEmulator
from tests.slack.conftest import Bot
from workflows import assessment
from workflows.db import read_only, unit_of_work
from workflows.engine import layout_rollout
from workflows.errors import InputError
from workflows.models import Event, Host, Rollout
from workflows.plans import PatchPlan
from workflows.ports import InventoryHost

REGISTRY = default_registry()


# --- parsing --------------------------------------------------------------------------------


def test_discovery_arguments_are_typed() -> None:
    assert parse("hosts", REGISTRY)[1] == Hosts("all")
    assert parse("hosts group:prod and not tag:pci", REGISTRY)[1] == Hosts(
        "group:prod and not tag:pci"
    )
    assert parse("assess group:prod --top 5", REGISTRY)[1] == Assess("group:prod", 5)
    assert parse("assess", REGISTRY)[1] == Assess("all", 10)
    assert parse("emergency cve-2024-3094", REGISTRY)[1] == Emergency("CVE-2024-3094", None)
    assert parse("emergency CVE-2024-3094 \u2014plan weekly", REGISTRY)[1] == Emergency(
        "CVE-2024-3094", "weekly"
    )


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("hosts group:(", "bad selector"),
        ("assess group:prod and", "bad selector"),
        ("assess --top many", "--top needs a number from 1 to 30"),
        ("assess --top 500", "--top needs a number from 1 to 30"),
        ("assess --json", "unknown option '--json'"),
        ("emergency", "a CVE id is missing"),
        ("emergency openssl", "'openssl' is not a CVE id"),
        ("emergency CVE-2024-3094 CVE-2024-6387", "unexpected 'CVE-2024-6387'"),
        ("emergency CVE-2024-3094 --plan", "a plan name is missing after --plan"),
        ("emergency CVE-2024-3094 --now", "unknown option '--now'"),
    ],
)
def test_bad_discovery_input_is_a_usage_error_naming_what_was_wrong(text: str, says: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse(text, REGISTRY)
    assert says in str(caught.value)


async def test_a_bad_selector_gets_an_ephemeral_usage_message_and_posts_nothing(
    bot: Bot, slack_api: SlackEmulator
) -> None:
    status, body = await bot.command("hosts group:(", user=OUTSIDER)
    reply = json.loads(body)
    assert status == 200 and reply["response_type"] == "ephemeral"
    assert "bad selector" in reply["text"] and "/patch hosts [SELECTOR]" in reply["text"]
    assert slack_api.called("chat.postEphemeral") == []


# --- helpers --------------------------------------------------------------------------------


async def answer(slack_api: SlackEmulator, count: int = 1) -> dict[str, Any]:
    """The ephemeral answer posted after the ack (the newest of ``count``)."""
    calls = await slack_api.wait_for("chat.postEphemeral", count)
    call = calls[count - 1]
    assert call.response is not None and call.response["ok"], call.response
    return call.params


def text_of(params: dict[str, Any]) -> str:
    blocks = params.get("blocks") or []
    if isinstance(blocks, str):
        blocks = json.loads(blocks)
    parts = [params.get("text") or ""]
    for block in blocks:
        if block.get("type") == "section":
            parts.append(block["text"]["text"])
        elif block.get("type") == "context":
            parts += [e["text"] for e in block["elements"]]
    return "\n".join(parts)


async def record_facts(bot: Bot, facts: Mapping[str, tuple[bool, dt.datetime | None]]) -> None:
    async with unit_of_work(bot.rig.db) as session:
        for name, (reachable, at) in facts.items():
            session.add(
                Host(
                    name=name,
                    reachable=reachable,
                    facts_at=at,
                    os_id="debian" if reachable else None,
                    os_version="12" if reachable else None,
                    last_error=None if reachable else "HostUnreachable: timed out",
                )
            )


def finding(host: str, package: str, cves: tuple[str, ...], risk: int) -> assessment.Finding:
    return assessment.Finding(
        host=host,
        package=package,
        current="1.0",
        candidate="1.1",
        advisories=("RHSA-2024:1234",) if cves else (),
        cves=cves,
        severity="critical" if risk > 50 else "low",
        cvss=None,
        known_exploited=risk > 80,
        published=None,
        security=bool(cves),
        risk=risk,
        reasons=(f"reason-{package}-{risk}",),
    )


async def store(bot: Bot, findings: dict[str, list[assessment.Finding]]) -> None:
    async with unit_of_work(bot.rig.db) as session:
        for host, items in findings.items():
            await assessment.store(session, host=host, findings=items, at=bot.rig.clock.now())


# --- hosts ------------------------------------------------------------------------------------


async def test_hosts_acks_at_once_then_lists_the_selected_hosts_with_their_gaps(
    bot: Bot, slack_api: SlackEmulator
) -> None:
    now = bot.rig.clock.now()
    await record_facts(
        bot,
        {
            "prod-01": (True, now - dt.timedelta(hours=1)),
            "prod-02": (False, now - dt.timedelta(hours=1)),
            "prod-03": (True, now - dt.timedelta(days=3)),
        },
    )
    status, body = await bot.command("hosts group:prod", user=OUTSIDER)
    assert status == 200 and "Looking up hosts matching `group:prod`" in body
    params = await answer(slack_api)
    assert params["user"] == OUTSIDER and params["channel"] == "C0PATCHES"
    text = text_of(params)
    assert "6 host(s) match `group:prod`; 5 coverage gap(s)" in text
    assert "`prod-01` · debian 12" in text and "prod-01` · debian 12 — " not in text
    assert "`prod-02` — :warning: unreachable: HostUnreachable: timed out" in text
    assert "facts from" in text and "are stale" in text  # prod-03
    assert "`prod-06` — :warning: no facts yet" in text
    assert "dev-01" not in text


async def test_hosts_on_a_large_fleet_stays_inside_block_kit_and_says_how_many_more(
    bot: Bot, slack_api: SlackEmulator
) -> None:
    fleet = [
        InventoryHost(name=f"web-{i:04d}.example.com", groups=frozenset({"web"}), environment="p")
        for i in range(2500)
    ]
    bot.deps.inventory = StaticInventory(fleet)
    await bot.command("hosts group:web", user=OUTSIDER)
    params = await answer(slack_api)  # the emulator refuses what Slack would refuse
    blocks = (
        params["blocks"] if isinstance(params["blocks"], list) else json.loads(params["blocks"])
    )
    assert len(blocks) <= 50
    text = text_of(params)
    assert "2500 host(s) match `group:web`; 2500 coverage gap(s)" in text
    assert "`web-0039.example.com`" in text and "web-0040.example.com" not in text
    assert "… and 2460 more" in text


# --- status and App Home ----------------------------------------------------------------------


async def test_status_lists_unreachable_stale_and_never_gathered_hosts_as_coverage_gaps(
    bot: Bot,
) -> None:
    now = bot.rig.clock.now()
    fresh = {h.name: (True, now - dt.timedelta(hours=2)) for h in bot.rig.hosts}
    fresh["stg-01"] = (False, now - dt.timedelta(hours=2))
    fresh["prod-04"] = (True, now - dt.timedelta(hours=30))  # PATCHGATE_FACTS_MAX_AGE_HOURS=24
    del fresh["dev-02"]
    await record_facts(bot, fresh)
    status, body = await bot.command("status", user=OUTSIDER)
    text = json.loads(body)["text"]
    assert status == 200 and "*Coverage gaps* (3)" in text
    assert "`stg-01`: unreachable: HostUnreachable: timed out" in text
    assert "`prod-04`: facts from 2026-01-02 20:00 are stale" in text
    assert "`dev-02`: no facts yet" in text
    assert "prod-01" not in text


async def test_status_without_gaps_says_so(bot: Bot) -> None:
    now = bot.rig.clock.now()
    await record_facts(bot, {h.name: (True, now) for h in bot.rig.hosts})
    _, body = await bot.command("status", user=OUTSIDER)
    assert "*Coverage gaps* (0)\nnone: every host answered" in json.loads(body)["text"]


async def test_status_cuts_a_long_gap_list_with_a_count(bot: Bot) -> None:
    bot.deps.inventory = StaticInventory([InventoryHost(name=f"h{i:03d}") for i in range(100)])
    _, body = await bot.command("status", user=OUTSIDER)
    text = json.loads(body)["text"]
    assert "*Coverage gaps* (100)" in text and "`h011`: no facts yet" in text
    assert "h012" not in text and "… and 88 more" in text


async def test_app_home_shows_the_coverage_gaps(bot: Bot, slack_api: SlackEmulator) -> None:
    now = bot.rig.clock.now()
    await record_facts(bot, {h.name: (True, now) for h in bot.rig.hosts if h.name != "prod-06"})
    status, _ = await bot.event({"type": "app_home_opened", "user": OUTSIDER, "tab": "home"})
    assert status == 200
    (published,) = await slack_api.wait_for("views.publish")
    view = published.params["view"]
    view = json.loads(view) if isinstance(view, str) else view
    texts = [b["text"]["text"] for b in view["blocks"] if b["type"] == "section"]
    (gaps,) = [t for t in texts if t.startswith("*Coverage gaps*")]
    assert gaps == "*Coverage gaps* (1)\n• `prod-06`: no facts yet"


# --- assess -------------------------------------------------------------------------------------


async def test_assess_ranks_the_stored_fixes_with_their_reasons_and_names_unassessed_hosts(
    bot: Bot, slack_api: SlackEmulator
) -> None:
    await store(
        bot,
        {
            "prod-01": [finding("prod-01", "openssl", ("CVE-2024-0001",), 90)],
            "prod-02": [
                finding("prod-02", "openssl", ("CVE-2024-0001",), 60),
                finding("prod-02", "bash", (), 5),
            ],
            "prod-03": [],  # assessed, clean
            "dev-01": [finding("dev-01", "openssl", ("CVE-2024-0001",), 99)],
        },
    )
    status, body = await bot.command("assess group:prod --top 2", user=OUTSIDER)
    assert status == 200 and "Ranking the stored assessments" in body
    text = text_of(await answer(slack_api))
    assert "Top 2 of 3 fix(es) on 3 assessed host(s) matching `group:prod`" in text
    first = text.index("*90* `prod-01` openssl 1.0 → 1.1")
    second = text.index("*60* `prod-02` openssl")
    assert first < second and "bash" not in text  # only the top 2
    assert "RHSA-2024:1234: CVE-2024-0001 (critical, *known exploited*)" in text
    assert "reason-openssl-90" in text and "dev-01" not in text
    assert "3 host(s) not assessed yet: `prod-04`, `prod-05`, `prod-06`" in text


async def test_assess_without_any_stored_assessment_says_how_to_make_one(
    bot: Bot, slack_api: SlackEmulator
) -> None:
    await bot.command("assess", user=OUTSIDER)
    text = text_of(await answer(slack_api))
    assert "No stored assessment for the 10 host(s) matching `all`" in text
    assert "patchgate assess --refresh" in text


# --- emergency ----------------------------------------------------------------------------------


def write_emergency_plan(bot: Bot) -> None:
    data = plan_dict(
        name="urgent",
        emergency={"batch": 1, "skip_rings": ["staging"], "approvers": {"users": ["U0ONCALL"]}},
    )
    YAML().dump(data, bot.deps.settings.plans_dir / "urgent.yml")


async def rollouts(bot: Bot) -> list[Rollout]:
    async with read_only(bot.rig.db) as session:
        return list(await session.scalars(sa.select(Rollout)))


async def test_emergency_by_someone_who_is_not_an_operator_is_refused_and_audited(
    bot: Bot, slack_api: SlackEmulator
) -> None:
    write_emergency_plan(bot)
    await store(bot, {"prod-01": [finding("prod-01", "openssl", ("CVE-2024-0001",), 90)]})
    status, body = await bot.command("emergency CVE-2024-0001", user=OUTSIDER)
    assert status == 200 and "U0OUTSIDE is not an operator" in body
    assert await rollouts(bot) == []
    async with read_only(bot.rig.db) as session:
        events = (await session.scalars(sa.select(Event).where(Event.actor == OUTSIDER))).all()
    assert [e.kind for e in events] == ["request.refused"]
    assert json.loads(events[0].body)["data"]["action"] == "emergency"
    assert slack_api.called("chat.postEphemeral") == []


async def test_emergency_for_a_cve_that_affects_no_host_says_so_and_starts_nothing(
    bot: Bot, slack_api: SlackEmulator
) -> None:
    write_emergency_plan(bot)
    await store(bot, {"prod-01": [finding("prod-01", "openssl", ("CVE-2024-0001",), 90)]})
    status, body = await bot.command("emergency CVE-2024-9999", user=REQUESTER)
    assert status == 200 and "Finding the hosts affected by CVE-2024-9999" in body
    text = text_of(await answer(slack_api))
    assert "No host is affected by CVE-2024-9999" in text and "1 host(s) assessed" in text
    assert await rollouts(bot) == []


async def test_emergency_without_a_profile_or_with_an_unknown_plan_is_explained(
    bot: Bot,
) -> None:
    _, body = await bot.command("emergency CVE-2024-0001", user=REQUESTER)
    assert "plans with an emergency profile: none" in body
    _, body = await bot.command("emergency CVE-2024-0001 --plan weekly", user=REQUESTER)
    assert "Plan `weekly` has no `emergency:` profile" in body
    _, body = await bot.command("emergency CVE-2024-0001 --plan nope", user=REQUESTER)
    assert "There is no plan named `nope`" in body
    assert await rollouts(bot) == []


async def test_emergency_starts_an_expedited_rollout_of_exactly_the_affected_hosts(
    bot: Bot, slack_api: SlackEmulator
) -> None:
    write_emergency_plan(bot)
    cve = ("CVE-2024-0001",)
    await store(
        bot,
        {
            "stg-01": [finding("stg-01", "openssl", cve, 70)],
            "prod-02": [finding("prod-02", "openssl", cve, 90), finding("prod-02", "bash", (), 3)],
            "prod-05": [finding("prod-05", "openssl", cve, 90)],
            "prod-06": [finding("prod-06", "bash", ("CVE-2024-0002",), 40)],
        },
    )
    status, body = await bot.command("emergency cve-2024-0001", user=REQUESTER)
    assert status == 200 and "Finding the hosts affected by CVE-2024-0001" in body
    text = text_of(await answer(slack_api))
    (rollout,) = await rollouts(bot)
    assert f"Emergency rollout #{rollout.id} of `urgent` for CVE-2024-0001" in text
    assert "3 host(s) (`prod-02`, `prod-05`, `stg-01`), packages `openssl`" in text
    assert rollout.emergency and rollout.requested_by == REQUESTER and rollout.source == "slack"
    plan = PatchPlan.model_validate(rollout.plan_snapshot)
    assert [r.name for r in plan.rings] == ["dev", "prod"]  # staging skipped by the profile
    assert plan.packages.include == ["openssl"]
    layout = layout_rollout(plan, bot.rig.hosts)
    placed = {h for ring in layout.rings for h in ring.hosts}
    assert placed == {"prod-02", "prod-05"}  # stg-01's ring is skipped: never patched here
    assert plan.rings[1].gate.approvers is not None
    assert plan.rings[1].gate.approvers.users == ["U0ONCALL"]


# --- ack first, then the slow part --------------------------------------------------------------


class GatedInventory:
    """An inventory whose read waits until the test lets it go (a slow 10,000-host file)."""

    def __init__(self, hosts: list[InventoryHost]) -> None:
        self.hosts_list = hosts
        self.release = threading.Event()
        self.reading = threading.Event()

    def hosts(self) -> list[InventoryHost]:
        self.reading.set()
        assert self.release.wait(timeout=30), "the test never released the inventory"
        return self.hosts_list


async def test_the_ack_goes_out_before_the_inventory_is_read(
    bot: Bot, slack_api: SlackEmulator
) -> None:
    inventory = GatedInventory([InventoryHost(name="slow-01", groups=frozenset({"web"}))])
    bot.deps.inventory = inventory
    status, body = await bot.command("hosts group:web", user=OUTSIDER)
    # answered while the read is still blocked
    assert status == 200 and "Looking up hosts" in body
    assert await asyncio.to_thread(inventory.reading.wait, 10)
    assert slack_api.called("chat.postEphemeral") == []
    inventory.release.set()
    assert "`slow-01`" in text_of(await answer(slack_api))


class BrokenInventory:
    def hosts(self) -> list[InventoryHost]:
        raise InputError("inventory/hosts.yml line 3: 'web[01:' is not a host range")


async def test_an_unreadable_inventory_is_one_ephemeral_line_not_a_silent_nothing(
    bot: Bot, slack_api: SlackEmulator
) -> None:
    bot.deps.inventory = BrokenInventory()
    await bot.command("hosts", user=OUTSIDER)
    params = await answer(slack_api)
    assert params["text"] == (":warning: inventory/hosts.yml line 3: 'web[01:' is not a host range")
    _, body = await bot.command("status", user=OUTSIDER)
    text = json.loads(body)["text"]
    assert "*Active rollouts*" in text
    assert "*Coverage gaps*: the inventory could not be read: inventory/hosts.yml line 3" in text


async def test_help_lists_the_discovery_subcommands(bot: Bot) -> None:
    _, body = await bot.command("help", user=OUTSIDER)
    text = json.loads(body)["text"]
    for usage in (
        "/patch hosts [SELECTOR]",
        "/patch assess [SELECTOR] [--top N]",
        "/patch emergency CVE-YYYY-NNNN [--plan PLAN]",
    ):
        assert usage in text
    assert text.count("/patch hosts") == 1
