"""/patch zones: parsed, run through the real app (no broker: no zones), and answered
from a real broker with a real `patchgate worker` of one zone and none of another."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.slack.commands.handlers import default_registry
from bot.slack.commands.parser import parse
from bot.slack.commands.registry import UsageError
from bot.slack.commands.zones import zones_answer
from tests.enginekit import OUTSIDER, Rig
from tests.fakes.slack_api import SlackEmulator
from tests.slack.conftest import Bot, make_deps, make_settings
from tests.slack.test_discovery_commands import answer, text_of
from tests.zonekit import fleet, redis_broker, zoned_hosts
from workflows.db import Database

REGISTRY = default_registry()


def test_zones_takes_no_arguments() -> None:
    assert parse("zones", REGISTRY)[0].name == "zones"
    with pytest.raises(UsageError, match="takes no arguments"):
        parse("zones dmz", REGISTRY)


async def test_without_a_broker_zones_says_the_leader_works_on_every_host(
    bot: Bot, slack_api: SlackEmulator
) -> None:
    status, body = await bot.command("zones", user=OUTSIDER)
    assert status == 200 and "Asking the zone workers" in body
    assert "every host is worked on by the leader" in text_of(await answer(slack_api))


async def test_zones_shows_live_workers_and_flags_a_zone_with_hosts_and_no_worker(
    db: Database, slack_api: SlackEmulator, tmp_path: Path
) -> None:
    zones = {"dev-02": "dmz", "stg-01": "dmz", "prod-01": "lab"}
    with redis_broker(14) as url, fleet(url, tmp_path) as workers:
        workers.start("dmz")
        rig = Rig(db, hosts=zoned_hosts(zones))
        deps = make_deps(make_settings(broker_url=url), db, rig, slack_api)
        text = ""
        for _ in range(40):  # the worker takes a few seconds to start
            text = (await zones_answer(deps))["text"]
            if "`dmz`: 2 hosts, 1 workers" in text:
                break
        assert ":large_green_circle: `dmz`: 2 hosts, 1 workers, 0 queued" in text
        assert ":red_circle: `lab`: 1 hosts, 0 workers" in text
        assert "patchgate worker --zone lab" in text


async def test_zoned_hosts_without_a_broker_are_flagged(
    db: Database, slack_api: SlackEmulator
) -> None:
    rig = Rig(db, hosts=zoned_hosts({"prod-01": "lab"}))
    deps = make_deps(make_settings(), db, rig, slack_api)
    text = (await zones_answer(deps))["text"]
    assert "PATCHGATE_BROKER_URL is not set" in text and "`lab`" in text
