"""The fleet view shared by /patch status, /patch hosts and App Home (bot.slack.fleet):
computed once for a burst of requests, and never older than what it was computed from."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
import sqlalchemy as sa

from bot.slack import fleet
from bot.slack.app import build_bolt_app
from bot.slack.commands.builtin import Status, run_status
from bot.slack.commands.registry import Invocation
from bot.slack.fleet import FleetViews
from tests.enginekit import REQUESTER
from tests.slack.conftest import SECRET, TOKEN, Bot
from workflows.db import unit_of_work
from workflows.models import Host, Rollout
from workflows.ports import InventoryHost


class Ticks:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def gathered(bot: Bot, name: str, *, reachable: bool = True) -> None:
    """Facts for ``name`` as discovery stores them (an ORM write)."""
    async with unit_of_work(bot.rig.db) as session:
        row = await session.scalar(sa.select(Host).where(Host.name == name))
        if row is None:
            row = Host(name=name)
            session.add(row)
        row.reachable = reachable
        row.last_error = None if reachable else "connection refused"
        row.facts_at = bot.rig.clock.now()


async def test_a_burst_of_requests_computes_the_view_once(bot: Bot) -> None:
    views = bot.deps.fleet_views = FleetViews()
    results = await asyncio.gather(*(bot.deps.fleet() for _ in range(25)))
    assert views.computed == 1
    assert all(r is results[0] for r in results)
    assert {h.name for h in results[0].hosts} == {h.name for h in bot.rig.hosts}


async def test_facts_stored_by_any_process_show_in_the_next_view(bot: Bot) -> None:
    bot.deps.fleet_views = FleetViews(reuse=3600)
    first = await bot.deps.fleet()
    assert ("dev-01", "no facts yet") in first.gaps
    await gathered(bot, "dev-01")
    await gathered(bot, "dev-02", reachable=False)
    second = await bot.deps.fleet()
    gaps = dict(second.gaps)
    assert "dev-01" not in gaps
    assert gaps["dev-02"] == "unreachable: connection refused"
    assert second.rows["dev-01"].reachable is True


async def test_facts_growing_old_open_a_gap_without_any_write(bot: Bot) -> None:
    bot.deps.fleet_views = FleetViews(reuse=3600)
    for host in bot.rig.hosts:
        await gathered(bot, host.name)
    assert (await bot.deps.fleet()).gaps == ()
    bot.rig.clock.advance(dt.timedelta(hours=bot.deps.settings.facts_max_age_hours, minutes=1))
    assert len((await bot.deps.fleet()).gaps) == len(bot.rig.hosts)


async def test_an_edited_inventory_shows_once_the_view_is_reuse_seconds_old(bot: Bot) -> None:
    ticks = Ticks()
    views = bot.deps.fleet_views = FleetViews(reuse=5.0, monotonic=ticks)
    assert len((await bot.deps.fleet()).hosts) == len(bot.rig.hosts)
    bot.rig.inventory._hosts.append(InventoryHost(name="new-01", groups=frozenset({"dev"})))
    ticks.now = 4.9
    assert "new-01" not in {h.name for h in (await bot.deps.fleet()).hosts}
    ticks.now = 5.0  # answered at once from the old view, computed again behind it
    assert "new-01" not in {h.name for h in (await bot.deps.fleet()).hosts}
    await views.renewed()
    assert "new-01" in {h.name for h in (await bot.deps.fleet()).hosts}


async def test_a_patch_stamp_does_not_make_the_view_computed_again(bot: Bot) -> None:
    """The engine stamps last_patched_at of every healthy host during a rollout; the view
    (facts, reachability, gaps) does not change with it, so /patch status does not read
    the whole fleet again for it (it did on every call during a 10,000-host rollout)."""
    views = bot.deps.fleet_views = FleetViews(reuse=3600)
    await gathered(bot, "dev-01")
    await bot.deps.fleet()
    ctx = bot.rig.engine().ctx
    async with ctx.transaction() as session:
        ctx.patched(session, "dev-01")
    async with unit_of_work(bot.rig.db) as session:
        stamped = await session.scalar(sa.select(Host.last_patched_at).where(Host.name == "dev-01"))
    assert stamped is not None  # the engine did stamp it
    await bot.deps.fleet()
    assert views.computed == 1
    await gathered(bot, "dev-01", reachable=False)  # a real change shows at once
    await bot.deps.fleet()
    assert views.computed == 2


async def test_a_slow_view_answers_while_it_is_computed_again_behind(
    bot: Bot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A large fleet's view took ~0.5 s to compute on the event loop; during discovery
    every /patch status waited for one. Such a view answers at once, and the next
    answers show what was gathered (it is computed again behind the answer at most every
    LARGE_RENEW s while hosts change); a view older than STALE_MAX is computed at once."""
    monkeypatch.setattr(fleet, "LARGE", 1)  # this fleet counts as large
    ticks = Ticks()
    views = bot.deps.fleet_views = FleetViews(reuse=3600, monotonic=ticks)
    assert ("dev-01", "no facts yet") in (await bot.deps.fleet()).gaps
    await gathered(bot, "dev-01")
    assert ("dev-01", "no facts yet") in (await bot.deps.fleet()).gaps  # at once, as it was
    await views.renewed()
    assert views.computed == 1  # not read again for each host gathered...
    ticks.now = fleet.LARGE_RENEW
    assert ("dev-01", "no facts yet") in (await bot.deps.fleet()).gaps
    await views.renewed()  # ...but once the view is LARGE_RENEW old, behind the answer
    assert "dev-01" not in dict((await bot.deps.fleet()).gaps)
    assert views.computed == 2
    await gathered(bot, "dev-01", reachable=False)
    ticks.now = fleet.LARGE_RENEW + fleet.STALE_MAX  # too old to answer: computed at once
    assert dict((await bot.deps.fleet()).gaps)["dev-01"].startswith("unreachable")


async def test_status_shows_facts_gathered_after_an_earlier_status(bot: Bot) -> None:
    status, body = await bot.command("status", user=REQUESTER)
    assert status == 200 and f"*Coverage gaps* ({len(bot.rig.hosts)})" in body
    for host in bot.rig.hosts:
        await gathered(bot, host.name)
    status, body = await bot.command("status ", user=REQUESTER)  # not a replay of the first
    assert status == 200 and "*Coverage gaps* (0)" in body


async def test_a_burst_of_status_larger_than_the_pool_does_not_starve_it(bot: Bot) -> None:
    """Callers waiting for the one computation hold no connection: 40 at once (more than
    the pool's 15) all answer, with one computation, long before a pool checkout would
    time out (30 s; that is what a caller holding its transaction while waiting did)."""
    views = bot.deps.fleet_views = FleetViews()
    who = Invocation(user_id=REQUESTER, channel_id="C0PATCHES")
    replies = await asyncio.wait_for(
        asyncio.gather(*(run_status(bot.deps, who, Status(None)) for _ in range(40))), 20
    )
    assert views.computed == 1
    assert all(f"*Coverage gaps* ({len(bot.rig.hosts)})" in r["text"] for r in replies)


async def test_status_lines_follow_every_rollout_write(bot: Bot) -> None:
    """/patch status reuses its rollout lines only while no rollout was written."""
    who = Invocation(user_id=REQUESTER, channel_id="C0PATCHES")
    first = (await run_status(bot.deps, who, Status(None)))["text"]
    assert "*Active rollouts*\nnone" in first
    rollout_id = await bot.rig.start()
    second = (await run_status(bot.deps, who, Status(None)))["text"]
    assert f"#{rollout_id} `weekly` *scheduled*" in second
    async with unit_of_work(bot.rig.db) as session:
        rollout = await session.get(Rollout, rollout_id)
        assert rollout is not None
        rollout.hold_reason = "change freeze"
    third = (await run_status(bot.deps, who, Status(None)))["text"]
    assert "held: change freeze" in third
    again = (await run_status(bot.deps, who, Status(None)))["text"]
    assert again == third and bot.deps.status_lines is not None


async def test_the_view_keeps_the_columns_answers_show_not_orm_rows(bot: Bot) -> None:
    """A 100,000-host view of ORM objects took hundreds of MB; a HostRow is what
    /patch hosts and the gaps read (OS, reachability, facts time)."""
    await gathered(bot, "dev-01", reachable=False)
    async with unit_of_work(bot.rig.db) as session:
        row = await session.scalar(sa.select(Host).where(Host.name == "dev-01"))
        assert row is not None
        row.os_family, row.os_id, row.os_version = "linux", "debian", "12"
    view = await FleetViews().get(bot.deps)
    kept = view.rows["dev-01"]
    assert type(kept) is fleet.HostRow
    assert (kept.os_family, kept.os_id, kept.os_version, kept.build) == (
        "linux",
        "debian",
        "12",
        None,
    )
    assert (kept.reachable, kept.last_error) == (False, "connection refused")
    assert kept.facts_at is not None
    assert dict(view.gaps)["dev-01"] == "unreachable: connection refused"


async def test_serve_computes_the_view_at_start_and_a_broken_inventory_only_logs(
    bot: Bot, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """``serve`` warms the view (the first /patch status of a 10,000-host fleet computed it
    inside its ack); an inventory that cannot be read then leaves it to the first command."""
    views = bot.deps.fleet_views = FleetViews(reuse=3600)
    app = build_bolt_app(bot.deps, signing_secret=SECRET, token=TOKEN)
    await app.warm()
    assert views.computed == 1
    await bot.deps.fleet()
    assert views.computed == 1  # the first answer used it

    bot.deps.fleet_views = FleetViews()

    def broken() -> list[InventoryHost]:
        raise OSError("inventory unreadable")

    monkeypatch.setattr(bot.deps.inventory, "hosts", broken)
    await app.warm()  # does not raise
    assert "could not compute the fleet view at start" in caplog.text
    assert bot.deps.fleet_views.computed == 0
