"""Host steps' writes committed in groups (issue 24, item 4): a rollout's statements per
host stay under a bound, one host's failing write is that host's alone, every host step
still fires its hook after its own write committed, and the healthy hosts' stamps and
the audit chain come out as one transaction per host step gives."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import Counter
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from tests.enginekit import Rig, make_plan, plan_dict
from workflows import audit, tickets
from workflows.db import Database, read_only, unit_of_work
from workflows.engine._context import StepContext
from workflows.engine._group import GroupCommit
from workflows.models import Event, Host, HostRun, Ticket, TicketState
from workflows.ports import InventoryHost

PROD = 60
T0 = dt.datetime(2026, 3, 29, 1, 30, tzinfo=dt.UTC)


def fleet() -> list[InventoryHost]:
    hosts = [InventoryHost(name="dev-01", groups=frozenset({"dev"}))]
    hosts += [InventoryHost(name=f"stg-{i:02d}", groups=frozenset({"staging"})) for i in (1, 2)]
    hosts += [InventoryHost(name=f"prod-{i:03d}", groups=frozenset({"prod"})) for i in range(PROD)]
    return hosts


def wide_plan() -> Any:
    rings = plan_dict()["rings"]
    rings[-1]["batch"] = PROD  # the whole prod ring in one batch
    return make_plan(rings=rings)


def statements(db: Database) -> Counter[str]:
    seen: Counter[str] = Counter()

    def count(_conn: Any, _cur: Any, statement: str, *_: Any) -> None:
        words = [*" ".join(statement.split()).lower().split(" "), "", "", ""]
        if words[0] == "insert":
            seen[f"insert {words[2]}"] += 1
        elif words[0] == "update":
            seen[f"update {words[1]}"] += 1
        else:
            seen[words[0]] += 1
        flat = " ".join(words)
        if words[0] == "select" and " from host_runs where host_runs.id = " in flat:
            seen["select one host_run"] += 1

    sa.event.listen(db.engine.sync_engine, "before_cursor_execute", count)
    return seen


async def test_a_rollout_writes_few_statements_per_host(db: Database) -> None:
    rig = Rig(db, hosts=fleet())
    rollout_id = await rig.start(wide_plan())
    seen = statements(db)
    steps: list[str] = []
    await rig.approve_all(rig.engine(steps.append), rollout_id)
    hosts = len(rig.hosts)
    assert set((await rig.host_states(rollout_id)).values()) == {"healthy"}
    # every host step still fired its hook once, after its own write committed
    assert Counter(steps)["host.apply.intent"] == hosts
    assert Counter(steps)["host.health.result"] == hosts
    # One transaction per host step wrote an INSERT of events, a head read and write and
    # a BEGIN per step (3 a host) and updated last_patched_at host by host; grouped, the
    # prod ring's 60 hosts share them.
    assert seen["insert events"] < hosts, seen  # was 3 a host at least (9 on SQLite)
    assert seen["update audit_head"] < hosts, seen  # was 3 a host
    assert seen["update hosts"] < hosts / 4, seen  # was 1 a host
    # A whole rollout of 63 hosts, gates and assessment included: 44 statements a host
    # on SQLite and 35 on PostgreSQL before, 25 and 18 with the groups.
    assert sum(seen.values()) / hosts < 28, seen
    # A host's last pass read its settled row again only to see it settled (one read a
    # host); now the pass takes the row its own step committed.
    assert seen["select one host_run"] < hosts / 4, seen
    async with read_only(db) as session:
        assert (await audit.verify(session)).count > 0
        stamped = await session.scalar(
            sa.select(sa.func.count()).select_from(Host).where(Host.last_patched_at.is_not(None))
        )
    assert stamped == hosts


class Refused(Exception):
    pass


async def test_one_failing_write_fails_its_host_alone(db: Database) -> None:
    rig = Rig(db)
    rollout_id = await rig.start(make_plan())
    await rig.engine().run_until_idle()  # the rollout's host runs exist
    async with read_only(db) as session:
        runs = list(
            await session.scalars(sa.select(HostRun).where(HostRun.rollout_id == rollout_id))
        )
    hooks: list[str] = []
    ctx = StepContext(rig.engine().deps, epoch=None, hook=hooks.append)
    group = GroupCommit(ctx)

    def writer(run: HostRun, fail: bool) -> Any:
        async def write(session: AsyncSession) -> None:
            fresh = await session.get(HostRun, run.id)
            assert fresh is not None
            fresh.error = "written"
            await ctx.event(session, "test.write", rollout_id, host=run.host_name)
            if fail:
                raise Refused(run.host_name)

        return write

    results = await asyncio.gather(
        *(group.run("test.step", writer(r, i == 1), (r.id,)) for i, r in enumerate(runs)),
        return_exceptions=True,
    )
    assert [isinstance(r, Refused) for r in results] == [i == 1 for i in range(len(runs))]
    assert hooks == ["test.step"] * (len(runs) - 1)
    # one group (rolled back), then each write alone
    assert group.groups == 1 + len(runs)
    async with read_only(db) as session:
        errors = {
            r.host_name: r.error
            for r in await session.scalars(
                sa.select(HostRun).where(HostRun.rollout_id == rollout_id)
            )
        }
        written = list(
            await session.scalars(sa.select(Event.body).where(Event.kind == "test.write"))
        )
        assert (await audit.verify(session)).count > 0
    assert [n for n, e in errors.items() if e != "written"] == [runs[1].host_name]
    assert len(written) == len(runs) - 1


async def test_writes_arriving_together_share_one_transaction(db: Database) -> None:
    rig = Rig(db)
    rollout_id = await rig.start(make_plan())
    await rig.engine().run_until_idle()
    async with read_only(db) as session:
        run_ids = list(
            await session.scalars(sa.select(HostRun.id).where(HostRun.rollout_id == rollout_id))
        )
    ctx = StepContext(rig.engine().deps, epoch=None, hook=lambda _s: None)
    group = GroupCommit(ctx)

    async def write(session: AsyncSession) -> None:
        await ctx.event(session, "test.together", rollout_id)

    await asyncio.gather(*(group.run("s", write, (i,)) for i in run_ids))
    assert group.groups == 1
    async with read_only(db) as session:
        ids = list(
            await session.scalars(
                sa.select(Event.id).where(Event.kind == "test.together").order_by(Event.id)
            )
        )
        head = await audit.read_head(session)
        assert (await audit.verify(session)).count > 0
    assert len(ids) == len(run_ids)
    assert head is not None and head.last_event_id == ids[-1]


@pytest.mark.parametrize("flush_last", [False, True])
async def test_held_back_events_keep_the_chain_order(db: Database, flush_last: bool) -> None:
    """Events appended with flush=False are written in one INSERT; a query of the events
    in the same transaction sees them, and a flushed append after them comes after them."""
    async with unit_of_work(db) as session:
        held = [
            await audit.append(session, kind="held", data={"i": i}, at=T0, flush=False)
            for i in range(3)
        ]
        seen = await session.scalar(sa.select(sa.func.count()).select_from(Event))
        assert seen == 3
        assert [e.id for e in held] == sorted(e.id for e in held if e.id is not None)
        await audit.append(session, kind="after", data={}, at=T0, flush=flush_last)
    async with read_only(db) as session:
        kinds = list(await session.scalars(sa.select(Event.kind).order_by(Event.id)))
        result = await audit.verify(session)
    assert kinds == ["held", "held", "held", "after"]
    assert result.count == 4


async def test_a_healthy_host_in_a_group_resolves_its_open_ticket(db: Database) -> None:
    """The group looks its hosts' open tickets up at once; a host that has one still
    has it resolved when it settles healthy, the others ask nothing more."""
    rig = Rig(db, hosts=fleet())
    rollout_id = await rig.start(wide_plan())
    async with unit_of_work(db) as session:
        await tickets.file_or_comment(
            session,
            subject="prod-007",
            cause=tickets.Cause.PATCH_FAILED,
            summary="prod-007 failed",
            description="an earlier rollout",
            severity="high",
            now=rig.clock.now(),
        )
    await rig.approve_all(rig.engine(), rollout_id)
    async with read_only(db) as session:
        rows = await session.execute(sa.select(Ticket.subject, Ticket.state))
        states = {subject: state for subject, state in rows.all()}
    assert states == {"prod-007": TicketState.RESOLVING.value}  # resolved, Jira to follow
