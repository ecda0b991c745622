"""The rollout engine against the recording executor, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from tests.enginekit import (
    APPROVER_1,
    APPROVER_2,
    OUTSIDER,
    REQUESTER,
    Rig,
    make_plan,
    plan_dict,
)
from workflows import audit
from workflows.db import Database, read_only
from workflows.models import Approval, Decision, Event, HostLease, OutboxItem

ALL_HOSTS = (
    [f"dev-{i:02d}" for i in (1, 2)]
    + [f"stg-{i:02d}" for i in (1, 2)]
    + [f"prod-{i:02d}" for i in range(1, 7)]
)


async def _verify_chain(db: Database) -> int:
    async with read_only(db) as session:
        result = await audit.verify(session)
    return result.count


async def test_happy_three_ring_rollout_patches_every_host_once(db: Database) -> None:
    rig = Rig(db)
    rollout_id = await rig.start()
    engine = rig.engine()
    await rig.approve_all(engine, rollout_id)

    rollout = await rig.rollout(rollout_id)
    assert rollout.state == "succeeded"
    assert await rig.ring_states(rollout_id) == {"dev": "done", "staging": "done", "prod": "done"}
    assert set((await rig.host_states(rollout_id)).values()) == {"healthy"}
    for host in ALL_HOSTS:
        assert rig.executor.apply_count(host) == 1
        assert rig.executor.installed_on(host)["openssl"] == "3.0.13-1"
        assert rig.executor.installed_on(host)["bash"] == "5.2"
    assert rollout.patchset == {"debian-12-amd64": {"demo-app": "1.1", "openssl": "3.0.13-1"}}
    assert await _verify_chain(db) > 0
    async with read_only(db) as session:
        leases = (await session.scalars(sa.select(HostLease))).all()
    assert leases == []
    async with read_only(db) as session:
        keys = set(await session.scalars(sa.select(OutboxItem.key)))
    assert f"rollout:{rollout_id}:parent" in keys
    assert f"rollout:{rollout_id}:finished" in keys


async def test_rollout_waits_at_the_gate_until_approved(db: Database) -> None:
    rig = Rig(db)
    rollout_id = await rig.start()
    engine = rig.engine()
    await engine.run_until_idle()
    rollout = await rig.rollout(rollout_id)
    assert rollout.state == "awaiting_approval"
    states = await rig.host_states(rollout_id)
    assert states["dev-01"] == "healthy" and states["stg-01"] == "pending"
    assert rig.executor.apply_count("stg-01") == 0
    gate = await rig.open_gate(rollout_id)
    assert gate is not None and gate.patchset_hash == rollout.patchset_hash


async def test_failure_budget_exceeded_stops_the_ring_and_rolls_it_back(db: Database) -> None:
    rig = Rig(db)
    rig.executor.fail("prod-01", "apply")  # exits 100
    rig.executor.fail("prod-02", "apply")
    rollout_id = await rig.start()
    engine = rig.engine()
    await rig.approve_all(engine, rollout_id)

    rollout = await rig.rollout(rollout_id)
    assert rollout.state == "rolled_back"
    assert "failure budget exceeded in ring prod" in (rollout.reason or "")
    rings = await rig.ring_states(rollout_id)
    assert rings == {"dev": "done", "staging": "done", "prod": "rolled_back"}
    states = await rig.host_states(rollout_id)
    # Batch one (prod-01, prod-02) failed: 2 > budget 1. Later batches never ran.
    assert states["prod-01"] == "rolled_back" and states["prod-02"] == "rolled_back"
    assert {states[f"prod-0{i}"] for i in range(3, 7)} == {"skipped"}
    for i in range(3, 7):
        assert rig.executor.apply_count(f"prod-0{i}") == 0
    assert rig.executor.installed_on("prod-01")["openssl"] == "3.0.11-1"
    # earlier rings are not touched by a later ring's rollback
    assert rig.executor.installed_on("dev-01")["openssl"] == "3.0.13-1"


async def test_unhealthy_host_is_rolled_back_and_counted_against_the_budget(db: Database) -> None:
    rig = Rig(db)
    rig.executor.state.bad_versions.append("demo-app=1.1")
    rollout_id = await rig.start(make_plan(**{"rings": [plan_dict()["rings"][0]]}))
    await rig.engine().run_until_idle()

    rollout = await rig.rollout(rollout_id)
    states = await rig.host_states(rollout_id)
    # dev ring has budget 0 and batch 1: the first unhealthy host stops it.
    assert states["dev-01"] == "rolled_back"
    assert states["dev-02"] == "skipped"
    assert rollout.state == "rolled_back"
    assert rig.executor.installed_on("dev-01")["demo-app"] == "1.0"
    assert rig.executor.apply_count("dev-02") == 0


async def test_unhealthy_host_without_ring_rollback_stays_rolled_back_alone(db: Database) -> None:
    rig = Rig(db)
    rig.executor.fail("dev-01", "health", "unhealthy")
    rings = [{"name": "dev", "hosts": "group:dev", "batch": 1, "failure_budget": 1}]
    rollout_id = await rig.start(make_plan(rings=rings))
    await rig.engine().run_until_idle()
    states = await rig.host_states(rollout_id)
    assert states == {"dev-01": "rolled_back", "dev-02": "healthy"}
    assert (await rig.rollout(rollout_id)).state == "succeeded_with_failures"


async def test_rejected_gate_stops_the_rollout(db: Database) -> None:
    rig = Rig(db)
    rollout_id = await rig.start()
    engine = rig.engine()
    await engine.run_until_idle()
    gate = await rig.open_gate(rollout_id)
    assert gate is not None
    outcome = await rig.vote(gate, APPROVER_2, Decision.REJECT, reason="CAB said no")
    assert outcome.accepted and outcome.gate_state == "rejected"
    await engine.run_until_idle()
    rollout = await rig.rollout(rollout_id)
    assert rollout.state == "rejected"
    assert "CAB said no" in (rollout.reason or "")
    rings = await rig.ring_states(rollout_id)
    assert rings == {"dev": "done", "staging": "rejected", "prod": "skipped"}
    assert rig.executor.apply_count("stg-01") == 0


async def test_rejection_without_a_reason_is_refused(db: Database) -> None:
    rig = Rig(db)
    rollout_id = await rig.start()
    await rig.engine().run_until_idle()
    gate = await rig.open_gate(rollout_id)
    assert gate is not None
    outcome = await rig.vote(gate, APPROVER_2, Decision.REJECT, reason="  ")
    assert not outcome.accepted and "reason" in outcome.message


async def test_gate_past_its_timeout_expires_and_rejects_the_rollout(db: Database) -> None:
    rig = Rig(db)
    rollout_id = await rig.start()
    engine = rig.engine()
    await engine.run_until_idle()
    gate = await rig.open_gate(rollout_id)
    assert gate is not None
    rig.clock.advance(dt.timedelta(hours=4, seconds=1))
    late = await rig.vote(gate, APPROVER_1)
    assert not late.accepted and "expired" in late.message
    await engine.run_until_idle()
    rollout = await rig.rollout(rollout_id)
    assert rollout.state == "rejected"
    async with read_only(db) as session:
        refreshed = await session.get(type(gate), gate.id)
    assert refreshed is not None and refreshed.state == "expired"


async def test_escalating_gate_is_extended_once_then_rejected(db: Database) -> None:
    rig = Rig(db)
    rings = plan_dict()["rings"][:2]
    rings[1]["gate"].update({"on_timeout": "escalate", "escalation_group": "S0ONCALL"})
    rollout_id = await rig.start(make_plan(rings=rings))
    engine = rig.engine()
    await engine.run_until_idle()
    rig.clock.advance(dt.timedelta(hours=4, seconds=1))
    await engine.run_until_idle()
    assert (await rig.rollout(rollout_id)).state == "awaiting_approval"
    gate = await rig.open_gate(rollout_id)
    assert gate is not None and gate.escalated
    rig.clock.advance(dt.timedelta(hours=4, seconds=1))
    await engine.run_until_idle()
    assert (await rig.rollout(rollout_id)).state == "rejected"


async def test_requester_may_not_approve_their_own_rollout(db: Database) -> None:
    rig = Rig(db)
    rollout_id = await rig.start(by=REQUESTER)
    engine = rig.engine()
    await engine.run_until_idle()
    staging_gate = await rig.open_gate(rollout_id)
    assert staging_gate is not None
    await rig.vote(staging_gate, APPROVER_1)
    await engine.run_until_idle()
    prod_gate = await rig.open_gate(rollout_id)
    assert prod_gate is not None and prod_gate.id != staging_gate.id
    outcome = await rig.vote(prod_gate, REQUESTER)  # listed as an approver, but the requester
    assert not outcome.accepted
    assert "requester" in outcome.message
    async with read_only(db) as session:
        votes = (
            await session.scalars(sa.select(Approval).where(Approval.gate_id == prod_gate.id))
        ).all()
        refusals = (
            await session.scalars(sa.select(Event).where(Event.kind == "gate.refused"))
        ).all()
    assert votes == []
    assert any(e.actor == REQUESTER for e in refusals)


async def test_someone_not_listed_cannot_approve(db: Database) -> None:
    rig = Rig(db)
    rollout_id = await rig.start()
    await rig.engine().run_until_idle()
    gate = await rig.open_gate(rollout_id)
    assert gate is not None
    outcome = await rig.vote(gate, OUTSIDER)
    assert not outcome.accepted and "not an approver" in outcome.message


async def test_quorum_of_two_needs_two_different_people(db: Database) -> None:
    rig = Rig(db)
    rollout_id = await rig.start()
    engine = rig.engine()
    await engine.run_until_idle()
    gate = await rig.open_gate(rollout_id)
    assert gate is not None
    await rig.vote(gate, APPROVER_1)
    await engine.run_until_idle()
    prod_gate = await rig.open_gate(rollout_id)
    assert prod_gate is not None and prod_gate.quorum == 2
    first = await rig.vote(prod_gate, APPROVER_1)
    assert first.accepted and first.gate_state == "open"
    again = await rig.vote(prod_gate, APPROVER_1)
    assert not again.accepted and "already voted" in again.message
    await engine.run_until_idle()
    assert (await rig.rollout(rollout_id)).state == "awaiting_approval"
    second = await rig.vote(prod_gate, APPROVER_2)
    assert second.accepted and second.gate_state == "approved"
    await engine.run_until_idle()
    assert (await rig.rollout(rollout_id)).state == "succeeded"
    late = await rig.vote(prod_gate, REQUESTER, Decision.REJECT, reason="too late")
    assert not late.accepted and "already approved" in late.message


async def test_approval_for_a_stale_patch_set_hash_is_refused(db: Database) -> None:
    rig = Rig(db)
    rollout_id = await rig.start()
    await rig.engine().run_until_idle()
    gate = await rig.open_gate(rollout_id)
    assert gate is not None
    stale = await rig.vote(gate, APPROVER_1, shown_hash="0123456789abcdef")
    assert not stale.accepted and "patch set" in stale.message
    short = await rig.vote(gate, APPROVER_1, shown_hash=(gate.patchset_hash or "")[:4])
    assert not short.accepted
    assert "prefix too short (need 8 characters, got 4)" in short.message, short.message
    assert "is for patch set" not in short.message  # it is the right set, too briefly named
    ok = await rig.vote(gate, APPROVER_1, shown_hash=(gate.patchset_hash or "")[:8])
    assert ok.accepted


async def test_two_rollouts_never_work_on_one_host_at_once(db: Database) -> None:
    rig = Rig(db)
    rig.executor.apply_delay = 0.2  # long enough for the other rollout to try the host
    one_ring = [{"name": "all", "hosts": "group:dev", "batch": "100%"}]
    first = await rig.start(make_plan(name="first", rings=one_ring))
    second = await rig.start(make_plan(name="second", rings=one_ring))
    await rig.engine().run_until_idle()
    assert (await rig.rollout(first)).state == "succeeded"
    assert (await rig.rollout(second)).state == "succeeded"
    # the one that waited finds the hosts patched by the other: settled up to date
    outcomes = [set((await rig.host_states(r)).values()) for r in (first, second)]
    assert sorted(outcomes, key=sorted) == [{"healthy"}, {"up_to_date"}]
    for host in ("dev-01", "dev-02"):
        assert rig.executor.apply_count(host) == 1
        assert rig.executor.max_concurrent_per_host[host] == 1
    async with read_only(db) as session:
        waits = (
            await session.scalars(sa.select(Event).where(Event.kind == "batch.waiting_for_lease"))
        ).all()
    assert len(waits) == 1, "one rollout should have waited for the other's leases"


async def test_busy_hosts_are_skipped_when_the_plan_says_skip(db: Database) -> None:
    rig = Rig(db)
    rig.executor.apply_delay = 0.2
    one_ring = [{"name": "all", "hosts": "group:dev", "batch": "100%"}]
    first = await rig.start(make_plan(name="first", rings=one_ring, lease_conflict="skip"))
    second = await rig.start(make_plan(name="second", rings=one_ring, lease_conflict="skip"))
    await rig.engine().run_until_idle()
    outcomes = sorted(
        [
            set((await rig.host_states(first)).values()),
            set((await rig.host_states(second)).values()),
        ],
        key=sorted,
    )
    # whichever took the leases first patched both hosts; the other skipped both
    assert outcomes == [{"healthy"}, {"skipped"}]
    assert rig.executor.apply_count("dev-01") == 1


async def test_pinned_version_gone_before_the_last_ring_fails_it_untouched(db: Database) -> None:
    rig = Rig(db)
    rollout_id = await rig.start()
    engine = rig.engine()
    await engine.run_until_idle()
    gate = await rig.open_gate(rollout_id)
    assert gate is not None
    await rig.vote(gate, APPROVER_1)
    await engine.run_until_idle()
    rig.executor.withdraw("openssl", "3.0.13-1")  # the mirror dropped the pinned version
    prod_gate = await rig.open_gate(rollout_id)
    assert prod_gate is not None
    await rig.vote(prod_gate, APPROVER_1)
    await rig.vote(prod_gate, APPROVER_2)
    await engine.run_until_idle()
    rollout = await rig.rollout(rollout_id)
    assert rollout.state == "failed"
    assert "pinned versions no longer available" in (rollout.reason or "")
    assert "openssl=3.0.13-1" in (rollout.reason or "")
    assert (await rig.ring_states(rollout_id))["prod"] == "failed"
    for i in range(1, 7):
        assert rig.executor.apply_count(f"prod-0{i}") == 0


async def test_patch_set_that_would_remove_packages_is_refused(db: Database) -> None:
    from workflows.ports import Simulation

    rig = Rig(db)

    async def removing(host: object, packages: object) -> Simulation:
        return Simulation(installs={"openssl": "3.0.13-1"}, removes=["libfoo"])

    rig.executor.simulate = removing  # type: ignore[method-assign,assignment]
    rollout_id = await rig.start()
    await rig.engine().run_until_idle()
    rollout = await rig.rollout(rollout_id)
    assert rollout.state == "failed"
    assert "would remove packages (libfoo)" in (rollout.reason or "")
    assert all(rig.executor.apply_count(h) == 0 for h in ALL_HOSTS)


async def test_new_dependencies_are_part_of_the_pinned_set(db: Database) -> None:
    rig = Rig(db)
    rig.executor.state.depends["demo-app=1.1"] = {"demo-lib": "2.0"}
    rig.executor.publish("demo-lib", "2.0")
    rollout_id = await rig.start(make_plan(rings=[plan_dict()["rings"][0]]))
    await rig.engine().run_until_idle()
    rollout = await rig.rollout(rollout_id)
    assert rollout.patchset == {
        "debian-12-amd64": {"demo-app": "1.1", "demo-lib": "2.0", "openssl": "3.0.13-1"}
    }
    assert rig.executor.installed_on("dev-01")["demo-lib"] == "2.0"


async def test_unreachable_host_counts_against_the_budget(db: Database) -> None:
    rig = Rig(db)
    rig.executor.fail("dev-02", "facts", "unreachable")
    rings = [{"name": "dev", "hosts": "group:dev", "batch": 1, "failure_budget": 1}]
    rollout_id = await rig.start(make_plan(rings=rings))
    await rig.engine().run_until_idle()
    states = await rig.host_states(rollout_id)
    assert states == {"dev-01": "healthy", "dev-02": "unreachable"}
    assert (await rig.rollout(rollout_id)).state == "succeeded_with_failures"


async def test_reboot_when_required_gives_the_host_a_new_boot(db: Database) -> None:
    rig = Rig(db)
    rig.executor.publish("demo-kernel", "1.1")
    for name in ("dev-01", "dev-02"):
        rig.executor.state.hosts[name].installed["demo-kernel"] = "1.0"
    before = rig.executor.state.hosts["dev-01"].boot_id
    rollout_id = await rig.start(make_plan(rings=[plan_dict()["rings"][0]]))
    await rig.engine().run_until_idle()
    assert set((await rig.host_states(rollout_id)).values()) == {"healthy"}
    assert rig.executor.state.hosts["dev-01"].boot_id != before
    assert ("dev-01", "reboot") in rig.executor.calls


async def test_pause_holds_new_batches_and_resume_continues(db: Database) -> None:
    from tests.enginekit import OPERATORS
    from workflows.db import unit_of_work
    from workflows.gates import Actor
    from workflows.models import RequestKind
    from workflows.requests import control_rollout

    rig = Rig(db)
    rings = [{"name": "dev", "hosts": "group:dev", "batch": 1}]
    rollout_id = await rig.start(make_plan(rings=rings))
    engine = rig.engine()
    for _ in range(4):  # assess, facts, pin, ring start
        await engine.tick()
    async with unit_of_work(db) as session:
        await control_rollout(
            session,
            rollout_id=rollout_id,
            kind=RequestKind.PAUSE,
            actor=Actor(REQUESTER),
            operators=OPERATORS,
            now=rig.clock.now(),
            reason="change freeze",
        )
    await engine.run_until_idle()
    rollout = await rig.rollout(rollout_id)
    assert rollout.hold_reason == "change freeze" and rollout.state == "running"
    assert rig.executor.apply_count("dev-01") == 0
    async with unit_of_work(db) as session:
        await control_rollout(
            session,
            rollout_id=rollout_id,
            kind=RequestKind.RESUME,
            actor=Actor(REQUESTER),
            operators=OPERATORS,
            now=rig.clock.now(),
        )
    await engine.run_until_idle()
    assert (await rig.rollout(rollout_id)).state == "succeeded"


async def test_abort_stops_at_the_batch_boundary_and_skips_the_rest(db: Database) -> None:
    from tests.enginekit import OPERATORS
    from workflows.db import unit_of_work
    from workflows.gates import Actor
    from workflows.models import RequestKind
    from workflows.requests import control_rollout

    rig = Rig(db)
    rollout_id = await rig.start()
    engine = rig.engine()
    await engine.run_until_idle()  # waits at the staging gate
    async with unit_of_work(db) as session:
        await control_rollout(
            session,
            rollout_id=rollout_id,
            kind=RequestKind.ABORT,
            actor=Actor(REQUESTER),
            operators=OPERATORS,
            now=rig.clock.now(),
            reason="wrong week",
        )
    await engine.run_until_idle()
    rollout = await rig.rollout(rollout_id)
    assert rollout.state == "aborted" and "wrong week" in (rollout.reason or "")
    states = await rig.host_states(rollout_id)
    assert states["dev-01"] == "healthy" and states["stg-01"] == "skipped"
    gate_after = await rig.open_gate(rollout_id)
    assert gate_after is None


async def test_non_operator_cannot_start_a_rollout_and_the_refusal_is_audited(
    db: Database,
) -> None:
    from tests.enginekit import OPERATORS
    from workflows.db import unit_of_work
    from workflows.errors import Forbidden
    from workflows.gates import Actor
    from workflows.requests import start_rollout

    async with unit_of_work(db) as session:
        result = await start_rollout(
            session,
            plan=make_plan(),
            actor=Actor(OUTSIDER),
            operators=OPERATORS,
            now=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        )
    assert isinstance(result, Forbidden)
    async with read_only(db) as session:
        kinds = list(await session.scalars(sa.select(Event.kind)))
        from workflows.models import Rollout

        rollouts = (await session.scalars(sa.select(Rollout))).all()
    assert kinds == ["request.refused"] and rollouts == []


async def test_a_bug_in_one_rollout_does_not_stop_the_others(db: Database) -> None:
    from workflows.ports import HostFacts, InventoryHost

    rig = Rig(db)
    real_facts = rig.executor.facts

    async def facts(host: InventoryHost) -> HostFacts:
        if host.name.startswith("dev-"):
            raise RuntimeError("driver bug")  # not an ExecutorError: an unexpected failure
        return await real_facts(host)

    rig.executor.facts = facts  # type: ignore[method-assign]
    broken = await rig.start(make_plan(name="broken", rings=[plan_dict()["rings"][0]]))
    staging = [{"name": "staging", "hosts": "group:staging", "batch": "100%"}]
    fine = await rig.start(make_plan(name="fine", rings=staging))
    engine = rig.engine()
    for _ in range(3):
        await engine.tick()
    assert (await rig.rollout(broken)).state == "assessing"  # retried, not lost
    for _ in range(9):
        await engine.tick()
    assert (await rig.rollout(fine)).state == "succeeded"
    broken_rollout = await rig.rollout(broken)  # retried up to the bound, then failed
    assert broken_rollout.state == "failed"
    assert "gave up" in (broken_rollout.reason or "")
