"""/patch hosts and /patch assess name Windows devices by family and build and a KB by
number and title (issue 21), through the real app against the Slack emulator."""

from __future__ import annotations

import dataclasses

from tests.enginekit import OUTSIDER
from tests.fakes.slack_api import SlackEmulator
from tests.slack.conftest import Bot
from tests.slack.test_discovery_commands import answer, text_of
from workflows import assessment
from workflows.db import unit_of_work
from workflows.models import Host
from workflows.ports import OS_BUILD_VAR, OS_FAMILY_VAR, PatchIdentity

KB = "KB5034441"
TITLE = "2024-01 Cumulative Update for Windows 11 Version 23H2 for x64-based Systems"


async def test_hosts_shows_a_windows_devices_family_and_build(
    bot: Bot, slack_api: SlackEmulator
) -> None:
    # prod-02: imported from a tool, never seen yet: the inventory's word is shown
    bot.rig.inventory._hosts = [  # type: ignore[attr-defined]
        dataclasses.replace(h, vars={OS_FAMILY_VAR: "macos", OS_BUILD_VAR: "23C64"})
        if h.name == "prod-02"
        else h
        for h in bot.rig.hosts
    ]
    now = bot.rig.clock.now()
    async with unit_of_work(bot.rig.db) as session:
        session.add(
            Host(
                name="prod-01",
                reachable=True,
                facts_at=now,
                os_id="windows",
                os_version="10.0.22631",
                os_family="windows",
                build="22631.3007",
            )
        )
        session.add(
            Host(name="prod-03", reachable=True, facts_at=now, os_id="debian", os_version="12")
        )
    status, _ = await bot.command("hosts group:prod", user=OUTSIDER)
    assert status == 200
    text = text_of(await answer(slack_api))
    assert "`prod-01` · windows 10.0.22631 build 22631.3007" in text
    assert "`prod-02` · macos build 23C64" in text
    assert "`prod-03` · debian 12" in text  # Linux as before


async def test_assess_names_a_kb_by_number_and_title_not_name_arrow_version(
    bot: Bot, slack_api: SlackEmulator
) -> None:
    finding = assessment.Finding(
        host="prod-01",
        package=KB,
        current=None,
        candidate="cat-7f3a",
        advisories=(KB,),
        cves=("CVE-2024-20666",),
        severity="high",
        cvss=8.1,
        known_exploited=False,
        published=None,
        security=True,
        risk=46,
        reasons=("CVSS 8.1",),
        identity=PatchIdentity(
            kb=KB, catalog_id="cat-7f3a", title=TITLE, classification="security"
        ),
    )
    async with unit_of_work(bot.rig.db) as session:
        await assessment.store(session, host="prod-01", findings=[finding], at=bot.rig.clock.now())
    status, _ = await bot.command("assess group:prod", user=OUTSIDER)
    assert status == 200
    text = text_of(await answer(slack_api))
    assert f"*46* `prod-01` {KB} — {TITLE} [security] — {KB}: CVE-2024-20666 (high)" in text
    assert "→ cat-7f3a" not in text
