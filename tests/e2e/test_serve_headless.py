"""``patchgate serve`` without Slack runs a rollout of the example plan to the end.

The test plays the people: it starts the rollout and casts the gate votes by writing
rows (exactly what the CLI and Slack faces do), while a real ``serve`` process, as the
leader, runs the engine against the recording fleet and delivers notifications to
its log.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from integrations.inventory import FileInventory
from integrations.testing.simjournal import load_state
from tests.dbutil import BACKENDS, fresh_database_url
from tests.e2e.harness import (
    EXAMPLE_INVENTORY,
    EXAMPLE_PLANS,
    OPERATOR,
    ServeProcess,
    base_env,
    metric,
    migrate,
)
from workflows.db import Database, create_database, read_only, unit_of_work
from workflows.engine import layout_rollout
from workflows.gates import Actor, decide
from workflows.models import Decision, Gate, HostRun, OutboxItem, Rollout
from workflows.plans import PatchPlan, load_plans
from workflows.requests import start_rollout
from workflows.states import ROLLOUT_TERMINAL

RUN_TIMEOUT = 90.0
# The example plan's approvers: U0123ABCDE alone for canary; two of U0123ABCDE,
# U0456FGHIJ (or group S0789KLMNO) for production.
APPROVERS = ("U0123ABCDE", "U0456FGHIJ")
NEW_VERSIONS = {"openssl": "3.0.13-1", "demo-app": "1.1"}


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with fresh_database_url(request.param, tmp_path) as url:
        yield url


def weekly_plan() -> PatchPlan:
    return load_plans(EXAMPLE_PLANS)["weekly"].plan


def selected_hosts(plan: PatchPlan) -> set[str]:
    layout = layout_rollout(plan, FileInventory([EXAMPLE_INVENTORY]).hosts())
    return {host for ring in layout.rings for host in ring.hosts}


async def start_weekly(db: Database) -> int:
    async with unit_of_work(db) as session:
        rollout = await start_rollout(
            session,
            plan=weekly_plan(),
            actor=Actor(OPERATOR),
            operators=frozenset({OPERATOR}),
            now=dt.datetime.now(dt.UTC),
        )
    assert isinstance(rollout, Rollout), rollout
    return rollout.id


async def approve_open_gate(db: Database, rollout_id: int) -> None:
    async with read_only(db) as session:
        gate = await session.scalar(
            sa.select(Gate).where(Gate.rollout_id == rollout_id, Gate.state == "open")
        )
    if gate is None:
        return
    for approver in APPROVERS[: gate.quorum]:
        async with unit_of_work(db) as session:
            outcome = await decide(
                session,
                gate_id=gate.id,
                actor=Actor(approver),
                decision=Decision.APPROVE,
                shown_hash=gate.patchset_hash,
                reason=None,
                now=dt.datetime.now(dt.UTC),
            )
        assert outcome.accepted, outcome.message


async def drive_to_the_end(db: Database, rollout_id: int, serve: ServeProcess) -> str:
    """Approve every gate the leader opens until the rollout ends; its final state."""
    deadline = time.monotonic() + RUN_TIMEOUT
    terminal = {s.value for s in ROLLOUT_TERMINAL}
    while time.monotonic() < deadline:
        async with read_only(db) as session:
            rollout = await session.get(Rollout, rollout_id)
        assert rollout is not None
        if rollout.state in terminal:
            return rollout.state
        if rollout.state == "awaiting_approval":
            await approve_open_gate(db, rollout_id)
        await asyncio.sleep(0.2)
    raise AssertionError(f"rollout {rollout_id} did not end within {RUN_TIMEOUT:g}s\n{serve.log()}")


async def outbox_settled(db: Database) -> bool:
    async with read_only(db) as session:
        pending = await session.scalar(
            sa.select(sa.func.count()).select_from(OutboxItem).where(OutboxItem.state == "pending")
        )
    return pending == 0


async def test_headless_serve_runs_the_weekly_plan_to_success_and_exits_cleanly_on_sigterm(
    database_url: str, tmp_path: Path
) -> None:
    migrate(database_url, tmp_path)
    state_file = tmp_path / "fleet.json"
    env = base_env(database_url, PATCHGATE_RECORDING_STATE_FILE=str(state_file))
    db = create_database(database_url)
    try:
        with ServeProcess(env, cwd=tmp_path) as serve:
            serve.wait_ready()
            health = serve.wait_leader(timeout=15)
            assert health["epoch"] == 1

            rollout_id = await start_weekly(db)
            final = await drive_to_the_end(db, rollout_id, serve)
            assert final == "succeeded", serve.log()

            async with read_only(db) as session:
                runs = dict(
                    (
                        await session.execute(
                            sa.select(HostRun.host_name, HostRun.state).where(
                                HostRun.rollout_id == rollout_id
                            )
                        )
                    ).all()
                )
            expected_hosts = selected_hosts(weekly_plan())
            assert len(expected_hosts) == 24
            assert runs == dict.fromkeys(expected_hosts, "healthy")

            fleet = load_state(state_file).hosts
            for host in expected_hosts:
                installed = fleet[host].installed
                assert {p: installed[p] for p in NEW_VERSIONS} == NEW_VERSIONS, host

            now_health = serve.healthz()
            assert now_health is not None
            assert now_health["leader"] is True
            assert now_health["database"] == "ok"

            text = serve.metrics()
            assert metric(text, "patchgate_rollouts", state="succeeded") == 1
            assert metric(text, "patchgate_rollouts", state="running") == 0
            assert metric(text, "patchgate_host_runs", state="healthy") == 24
            assert metric(text, "patchgate_leader") == 1
            assert metric(text, "patchgate_leader_epoch") == 1

            # Headless: the leader's outbox worker delivers notifications to its log.
            for _ in range(100):
                if await outbox_settled(db):
                    break
                await asyncio.sleep(0.2)
            assert await outbox_settled(db), serve.log()
            text = serve.metrics()
            assert (metric(text, "patchgate_outbox_rows", state="delivered") or 0) > 0
            assert metric(text, "patchgate_outbox_rows", state="dead") == 0
            assert f"Rollout #{rollout_id} of plan weekly" in serve.log()

            assert serve.terminate(timeout=45) == 0
            log = serve.log()
            assert "leader acquired with epoch 1" in log
            assert "SIGTERM received" in log
    finally:
        await db.dispose()


async def wait_for_state(db: Database, rollout_id: int, state: str, serve: ServeProcess) -> None:
    deadline = time.monotonic() + RUN_TIMEOUT
    while time.monotonic() < deadline:
        async with read_only(db) as session:
            rollout = await session.get(Rollout, rollout_id)
        assert rollout is not None
        if rollout.state == state:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"rollout {rollout_id} never reached {state}\n{serve.log()}")


async def test_a_rollout_stopped_by_sigterm_at_a_gate_is_finished_by_the_next_serve_without_repeats(
    tmp_path: Path,
) -> None:
    with fresh_database_url("sqlite", tmp_path) as url:
        migrate(url, tmp_path)
        state_file = tmp_path / "fleet.json"
        env = base_env(url, PATCHGATE_RECORDING_STATE_FILE=str(state_file))
        db = create_database(url)
        try:
            with ServeProcess(env, cwd=tmp_path, name="first") as first:
                first.wait_leader(timeout=45)
                rollout_id = await start_weekly(db)
                await wait_for_state(db, rollout_id, "awaiting_approval", first)
                assert first.terminate(timeout=45) == 0
            patched_before = {
                name: host.installed["openssl"]
                for name, host in load_state(state_file).hosts.items()
            }
            # dev and staging were patched before the canary gate; prod was not touched.
            assert patched_before["dev-01"] == NEW_VERSIONS["openssl"]
            assert patched_before["staging-02"] == NEW_VERSIONS["openssl"]
            assert all(
                version == "3.0.11-1"
                for name, version in patched_before.items()
                if name.startswith(("web-", "db-"))
            )

            with ServeProcess(env, cwd=tmp_path, name="second") as second:
                assert second.wait_leader(timeout=45)["epoch"] == 2
                assert await drive_to_the_end(db, rollout_id, second) == "succeeded"
                assert second.terminate(timeout=45) == 0

            fleet = load_state(state_file).hosts
            expected = selected_hosts(weekly_plan())
            assert {name: len(fleet[name].applied_ops) for name in expected} == dict.fromkeys(
                expected, 1
            )
        finally:
            await db.dispose()
