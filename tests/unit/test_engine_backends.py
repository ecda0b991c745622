"""One rollout spanning backends (issue 19): dev and staging over SSH (the recording
executor), one staging host moved to the batch backend by its inventory variable, prod
on the batch backend; gates, health checks, the failure budget and rollback behave the
same whichever backend patched a host. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Mapping

import sqlalchemy as sa

from tests.backendkit import BackendRig, mixed_hosts, mixed_plan
from workflows.backends import HOST_BACKEND_VAR
from workflows.db import Database, read_only
from workflows.models import Event, HostRun
from workflows.ports import InventoryHost, Preflight


async def _runs(rig: BackendRig, rollout_id: int) -> dict[str, HostRun]:
    async with read_only(rig.db) as session:
        runs = await session.scalars(sa.select(HostRun).where(HostRun.rollout_id == rollout_id))
        return {r.host_name: r for r in runs}


async def _events(rig: BackendRig, kind: str) -> list[dict[str, object]]:
    async with read_only(rig.db) as session:
        bodies = await session.scalars(
            sa.select(Event.body).where(Event.kind == kind).order_by(Event.id)
        )
        found = [json.loads(b) for b in bodies]
    return [d.get("data", d) for d in found]


async def test_one_rollout_spans_the_ssh_and_a_batch_backend(db: Database) -> None:
    rig = BackendRig(db)
    rollout_id = await rig.start(mixed_plan())
    await rig.approve_all(rig.engine(), rollout_id)
    assert (await rig.rollout(rollout_id)).state == "succeeded"
    runs = await _runs(rig, rollout_id)
    assert {n: (r.state, r.backend) for n, r in runs.items()} == {
        "dev-01": ("healthy", "ssh"),
        "stg-01": ("healthy", "ssh"),
        "stg-02": ("healthy", "batch"),  # its inventory variable
        "prod-01": ("healthy", "batch"),
        "prod-02": ("healthy", "batch"),
        "prod-03": ("healthy", "batch"),
    }
    for name in ("stg-02", "prod-01", "prod-02", "prod-03"):
        assert rig.executor.installed_on(name)["openssl"] == "3.0.13-1"
        assert runs[name].after_versions == {"demo-app": "1.1", "openssl": "3.0.13-1"}
        assert runs[name].op_id and "-batch-apply" in runs[name].op_id
    # Health checks ran on every host, whichever backend patched it.
    assert sorted(set(rig.health.checked)) == sorted(runs)
    # The batch got the hosts' share of the pinned set and the patch-set hash.
    works = rig.batch.submitted("apply")
    assert [sorted(h.name for h in w.hosts) for w in works] == [
        ["stg-02"],
        ["prod-01", "prod-02"],
        ["prod-03"],
    ]
    rollout = await rig.rollout(rollout_id)
    assert {w.patchset_hash for w in works} == {rollout.patchset_hash}
    assert works[0].versions == {"stg-02": {"demo-app": "1.1", "openssl": "3.0.13-1"}}
    # Evidence says which backend patched each host.
    commands = await _events(rig, "host.command")
    by_backend = {(c["host"], c.get("backend")) for c in commands if c["command"] == "batch:apply"}
    assert by_backend == {(n, "batch") for n in ("stg-02", "prod-01", "prod-02", "prod-03")}
    jobs = await _events(rig, "backend.job")
    assert [(j["action"], j["state"], j["hosts"]) for j in jobs] == [
        ("apply", "successful", {"applied": 1}),
        ("apply", "successful", {"applied": 2}),
        ("apply", "successful", {"applied": 1}),
    ]


async def test_a_failed_host_keeps_the_failing_task_and_is_rolled_back_by_a_job(
    db: Database,
) -> None:
    rig = BackendRig(db)
    rig.batch.fail("prod-03", "failed")
    rollout_id = await rig.start(mixed_plan())
    await rig.approve_all(rig.engine(), rollout_id)
    runs = await _runs(rig, rollout_id)
    assert runs["prod-03"].state == "rolled_back"
    assert runs["prod-03"].error is not None
    assert "failed in task 'Install the pinned packages'" in runs["prod-03"].error
    assert "dpkg returned an error code" in (runs["prod-03"].output_tail or "")
    assert runs["prod-03"].exit_code == 2
    (rollback,) = rig.batch.submitted("rollback")
    assert rollback.versions == {"prod-03": {"demo-app": "1.0", "openssl": "3.0.11-1"}}
    rollout = await rig.rollout(rollout_id)
    assert rollout.state == "succeeded_with_failures"  # within prod's budget of 1


async def test_unreachable_and_skipped_hosts_map_like_the_ssh_path(db: Database) -> None:
    rig = BackendRig(db)
    rig.batch.fail("prod-01", "unreachable")
    rig.batch.fail("prod-02", "skipped")  # the tool did nothing: not at the pinned versions
    plan = mixed_plan()
    rollout_id = await rig.start(plan.model_copy(update={"rings": _budget(plan, 2)}))
    await rig.approve_all(rig.engine(), rollout_id)
    runs = await _runs(rig, rollout_id)
    assert runs["prod-01"].state == "unreachable"
    assert runs["prod-01"].error == "unreachable: ssh: connect refused"
    assert runs["prod-02"].state in ("failed", "rolled_back")
    assert "skipped by the backend" in (runs["prod-02"].error or "")
    assert runs["prod-03"].state == "healthy"
    assert rig.executor.installed_on("prod-01")["openssl"] == "3.0.11-1"


async def test_a_budget_exceeded_on_a_batch_ring_rolls_the_ring_back_by_one_job(
    db: Database,
) -> None:
    rig = BackendRig(db)
    rig.batch.fail("prod-01", "failed")
    rig.batch.fail("prod-02", "failed")
    plan = mixed_plan()
    rings = [r.model_copy() for r in plan.rings]
    rings[2] = rings[2].model_copy(update={"batch": rings[2].batch.__class__(count=3)})
    rollout_id = await rig.start(plan.model_copy(update={"rings": rings}))
    await rig.approve_all(rig.engine(), rollout_id)
    assert (await rig.rollout(rollout_id)).state == "rolled_back"
    states = await rig.host_states(rollout_id)
    assert {n: states[n] for n in ("prod-01", "prod-02", "prod-03")} == dict.fromkeys(
        ("prod-01", "prod-02", "prod-03"), "rolled_back"
    )
    assert states["dev-01"] == "healthy"  # earlier rings stay patched
    scopes = sorted(
        (w.key.split("-")[3], sorted(w.versions)) for w in rig.batch.submitted("rollback")
    )
    assert scopes == [("b0", ["prod-01", "prod-02"]), ("ring", ["prod-03"])]
    assert rig.executor.installed_on("prod-03")["openssl"] == "3.0.11-1"


async def test_a_host_naming_a_backend_its_plan_does_not_configure_stops_the_rollout_first(
    db: Database,
) -> None:
    hosts = [
        *mixed_hosts()[:2],
        InventoryHost(
            name="stg-09", groups=frozenset({"staging"}), vars={HOST_BACKEND_VAR: "elsewhere"}
        ),
    ]
    rig = BackendRig(db, hosts=hosts)
    rollout_id = await rig.start(mixed_plan())
    await rig.engine().run_until_idle()
    rollout = await rig.rollout(rollout_id)
    assert rollout.state == "failed"
    assert rollout.reason is not None
    assert "host stg-09: patchgate_backend='elsewhere' is not a backend plan weekly configures" in (
        rollout.reason
    )
    assert rig.executor.calls == [] and rig.batch.calls == []  # no host was touched
    assert set((await rig.host_states(rollout_id)).values()) == {"skipped"}


def _budget(plan, budget: int):  # type: ignore[no-untyped-def]
    from workflows.plans import Amount

    rings = list(plan.rings)
    rings[2] = rings[2].model_copy(update={"failure_budget": Amount(count=budget)})
    return rings


async def test_an_abort_rolls_back_the_last_batch_of_a_batch_ring_by_one_job(
    db: Database,
) -> None:
    from tests.enginekit import OPERATORS, REQUESTER
    from workflows.db import unit_of_work
    from workflows.gates import Actor
    from workflows.models import RequestKind
    from workflows.requests import control_rollout

    rig = BackendRig(db)
    plan = mixed_plan(rollback={"on_abort": True})
    rollout_id = await rig.start(plan)
    engine = rig.engine()
    for _ in range(200):  # until prod's first batch is done (its gate approved)
        await engine.tick()
        gate = await rig.open_gate(rollout_id)
        if gate is not None:
            await rig.vote(gate, "U0APPROVE1")
            if gate.quorum > 1:
                await rig.vote(gate, "U0APPROVE2")
        if rig.batch.applies["prod-02"]:
            break
    # That tick ran prod's first batch to its end (one batch per step).
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
    assert (await rig.rollout(rollout_id)).state == "aborted"
    states = await rig.host_states(rollout_id)
    assert (states["prod-01"], states["prod-02"], states["prod-03"]) == (
        "rolled_back",
        "rolled_back",
        "skipped",
    )
    (work,) = rig.batch.submitted("rollback")
    assert "-abort-batch-rollback" in work.key and sorted(work.versions) == ["prod-01", "prod-02"]
    assert rig.executor.installed_on("prod-01")["openssl"] == "3.0.11-1"


async def test_a_backend_the_engine_does_not_have_stops_the_rollout_before_any_host(
    db: Database,
) -> None:
    plan = mixed_plan(backends={"ssh": {}, "batch": {}, "elsewhere": {"template": 7}})
    hosts = [*mixed_hosts()[:1]]
    hosts.append(
        InventoryHost(
            name="stg-09", groups=frozenset({"staging"}), vars={HOST_BACKEND_VAR: "elsewhere"}
        )
    )
    rig = BackendRig(db, hosts=hosts)
    rollout_id = await rig.start(plan)
    await rig.engine().run_until_idle()
    rollout = await rig.rollout(rollout_id)
    assert rollout.state == "failed"
    assert "host stg-09: backend 'elsewhere' is not available to this engine" in (
        rollout.reason or ""
    )
    assert rig.executor.calls == []


async def test_the_ssh_backend_assesses_hosts_through_the_executor(db: Database) -> None:
    from integrations.backends import SshBackend

    rig = BackendRig(db)
    rig.executor.fail("prod-03", "facts", "unreachable")
    found = await SshBackend(rig.executor).assess(
        [h for h in rig.hosts if h.name in ("prod-01", "prod-03")], {}
    )
    by_host = {a.host: a for a in found}
    assert by_host["prod-01"].reachable and by_host["prod-01"].facts is not None
    assert {u.name: u.candidate for u in by_host["prod-01"].upgradable} == {
        "demo-app": "1.1",
        "openssl": "3.0.13-1",
    }
    assert not by_host["prod-03"].reachable and "connection refused" in (
        by_host["prod-03"].error or ""
    )
    assert SshBackend().capabilities({}).per_host


async def test_the_pins_preflight_asks_only_hosts_reached_over_ssh(db: Database) -> None:
    """Before a ring the engine preflights the pins over SSH on one host per platform;
    a batch backend's hosts are patched by its tool, so they are never asked, and what
    SSH would say of them (here: the pin gone) does not stop their ring."""
    rig = BackendRig(db)
    plain = rig.executor.preflight
    tool_hosts = {"stg-02", "prod-01", "prod-02", "prod-03"}

    async def preflight(host: InventoryHost, patchset: Mapping[str, str]) -> Preflight:
        found = await plain(host, patchset)
        if host.name in tool_hosts:
            gone = [f"{n}={v}" for n, v in sorted(patchset.items())]
            return Preflight(ok=False, problems=[], unavailable=gone)
        return found

    rig.executor.preflight = preflight  # type: ignore[method-assign]
    rollout_id = await rig.start(mixed_plan())
    await rig.approve_all(rig.engine(), rollout_id)
    rollout = await rig.rollout(rollout_id)
    assert rollout.state == "succeeded", rollout.reason
    asked = {host for host, step in rig.executor.calls if step == "preflight"}
    assert asked == {"dev-01", "stg-01"}  # the SSH rings are still checked
    assert (await _runs(rig, rollout_id))["prod-01"].state == "healthy"
