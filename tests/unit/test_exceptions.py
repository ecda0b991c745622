"""Exceptions in the domain and the engine: scope, rules, and their tickets as outbox rows."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from tests.enginekit import OPERATORS, OUTSIDER, REQUESTER, Rig, make_plan
from workflows import assessment, exceptions
from workflows.db import Database, read_only, unit_of_work
from workflows.errors import Forbidden, InputError
from workflows.gates import Actor
from workflows.models import Decision, Event, HostException, OutboxItem, Ticket

RINGS = [{"name": "dev", "hosts": "group:dev", "batch": 1, "failure_budget": 1}]


async def _grant(rig: Rig, **kw: object) -> HostException | Forbidden:
    now = rig.clock.now()
    args: dict[str, object] = {
        "actor": Actor(REQUESTER),
        "operators": OPERATORS,
        "host": "dev-02",
        "owner": "U0OWNER1",
        "reason": "vendor freeze",
        "expires_at": now + dt.timedelta(days=3),
        "now": now,
        "max_days": 30,
    }
    args.update(kw)
    async with unit_of_work(rig.db) as session:
        return await exceptions.grant(session, **args)  # type: ignore[arg-type]


async def test_a_package_exception_leaves_that_package_alone_and_patches_the_rest(
    db: Database,
) -> None:
    rig = Rig(db)
    assert isinstance(await _grant(rig, package="demo-app"), HostException)
    rollout_id = await rig.start(make_plan(rings=RINGS))
    await rig.engine().run_until_idle()
    assert (await rig.host_states(rollout_id)) == {"dev-01": "healthy", "dev-02": "healthy"}
    assert rig.executor.installed_on("dev-02")["demo-app"] == "1.0"
    assert rig.executor.installed_on("dev-02")["openssl"] == "3.0.13-1"
    assert rig.executor.installed_on("dev-01")["demo-app"] == "1.1"


async def test_every_exception_gets_its_own_ticket_row_and_create_outbox_row(
    db: Database,
) -> None:
    rig = Rig(db)
    await _grant(rig)
    await _grant(rig, package="openssl", cve="CVE-2024-12345")
    async with read_only(db) as session:
        rows = list(await session.scalars(sa.select(Ticket).order_by(Ticket.id)))
        creates = list(await session.scalars(sa.select(OutboxItem).order_by(OutboxItem.id)))
    assert [(t.subject, t.cause) for t in rows] == [("dev-02", "exception")] * 2
    assert [c.payload["action"] for c in creates] == ["create", "create"]
    assert "CVE-2024-12345" in creates[1].payload["description"]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"owner": ""}, "an owner is required"),
        ({"reason": "  "}, "a reason is required"),
        ({"expires_at": dt.datetime(2026, 3, 1, tzinfo=dt.UTC)}, "at most 30 days"),
        ({"expires_at": dt.datetime(2025, 1, 1, tzinfo=dt.UTC)}, "must be in the future"),
        ({"cve": "CVE-2024-1111"}, "lists no fix for CVE-2024-1111"),
        ({"host": "bad host; rm -rf /"}, "is not a host name"),
    ],
)
async def test_an_exception_without_owner_reason_or_a_valid_expiry_is_refused(
    db: Database, changes: dict[str, object], message: str
) -> None:
    rig = Rig(db)
    with pytest.raises(InputError, match=message):
        await _grant(rig, **changes)
    async with read_only(db) as session:
        assert await session.scalar(sa.select(sa.func.count()).select_from(HostException)) == 0


async def test_a_non_operator_is_refused_and_the_refusal_is_audited(db: Database) -> None:
    rig = Rig(db)
    result = await _grant(rig, actor=Actor(OUTSIDER))
    assert isinstance(result, Forbidden)
    async with read_only(db) as session:
        kinds = list(await session.scalars(sa.select(Event.kind)))
    assert kinds == ["exception.refused"]


async def test_a_rejected_gate_opens_a_ticket_when_the_plan_asks_for_it(db: Database) -> None:
    rig = Rig(db)
    plan = make_plan(jira={"project": "OPS", "ticket_on_reject": True})
    rollout_id = await rig.start(plan)
    engine = rig.engine()
    await engine.run_until_idle()
    gate = await rig.open_gate(rollout_id)
    assert gate is not None
    await rig.vote(gate, "U0APPROVE1", Decision.REJECT, reason="change freeze")
    await engine.run_until_idle()
    async with read_only(db) as session:
        ticket = await session.scalar(sa.select(Ticket).where(Ticket.cause == "gate-rejected"))
        row = await session.scalar(
            sa.select(OutboxItem).where(OutboxItem.key == (ticket.outbox_key if ticket else ""))
        )
    assert ticket is not None and ticket.subject == "plan:weekly"
    assert row is not None and "change freeze" in row.payload["description"]
    assert row.payload["project"] == "OPS"


def _fix(host: str, package: str, cves: tuple[str, ...]) -> assessment.Finding:
    return assessment.Finding(
        host=host,
        package=package,
        current="1",
        candidate="2",
        advisories=(),
        cves=cves,
        severity="high",
        cvss=None,
        known_exploited=False,
        published=None,
        security=True,
        risk=40,
    )


async def test_a_cve_exception_takes_its_package_from_the_hosts_latest_assessment(
    db: Database,
) -> None:
    rig = Rig(db)
    async with unit_of_work(db) as session:
        await assessment.store(
            session,
            host="dev-02",
            findings=[
                _fix("dev-02", "openssl", ("CVE-2026-0001",)),
                _fix("dev-02", "demo-app", ("CVE-2026-0002",)),
            ],
            at=rig.clock.now(),
        )
    granted = await _grant(rig, cve="CVE-2026-0002")
    assert isinstance(granted, HostException)
    assert (granted.package, granted.cve) == ("demo-app", "CVE-2026-0002")
    rollout_id = await rig.start(make_plan(rings=RINGS))
    await rig.engine().run_until_idle()
    assert (await rig.host_states(rollout_id))["dev-02"] == "healthy"
    assert rig.executor.installed_on("dev-02")["demo-app"] == "1.0"  # held by the CVE's fix
    assert rig.executor.installed_on("dev-02")["openssl"] == "3.0.13-1"


async def test_a_cve_fixed_by_several_packages_is_refused_naming_them(db: Database) -> None:
    rig = Rig(db)
    async with unit_of_work(db) as session:
        await assessment.store(
            session,
            host="dev-02",
            findings=[
                _fix("dev-02", "openssl", ("CVE-2026-0001",)),
                _fix("dev-02", "libssl3", ("CVE-2026-0001",)),
            ],
            at=rig.clock.now(),
        )
    with pytest.raises(InputError, match=r"by 2 packages \(libssl3, openssl\): grant one"):
        await _grant(rig, cve="CVE-2026-0001")
    async with read_only(db) as session:
        assert await session.scalar(sa.select(sa.func.count()).select_from(HostException)) == 0
