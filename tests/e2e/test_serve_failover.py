"""Two real ``patchgate serve`` processes on PostgreSQL: the leader is SIGKILLed in the
middle of a rollout, the standby takes over within PATCHGATE_LEADER_TAKEOVER and
finishes it, and every host is patched exactly once.

The fleet is the recording executor's, shared through its state file (each simulated
host lists the apply operations it ran); each apply takes a second
(PATCHGATE_RECORDING_APPLY_DELAY), one host at a time, so there is work in flight to
kill.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from pathlib import Path

from integrations.testing.simjournal import load_state
from tests.dbutil import fresh_database_url
from tests.e2e.harness import OPERATOR, ServeProcess, base_env, migrate, wait_for
from workflows import requests
from workflows.db import create_database, read_only, unit_of_work
from workflows.gates import Actor
from workflows.models import Rollout
from workflows.plans import load_plans

SERIAL = """\
name: serial
packages: {include: ["*"]}
reboot: never
health_checks:
  - {name: ssh port open, type: tcp, port: 22}
rings:
  - {name: all, hosts: group:dev or group:staging, batch: 1}
slack: {channel: C0SERIAL01}
"""
HOSTS = {"dev-01", "dev-02", "staging-01", "staging-02"}
TAKEOVER_BOUND = 15.0  # PATCHGATE_LEADER_TAKEOVER=3 in base_env, plus process start slack


def applied(state_file: Path) -> dict[str, list[str]]:
    try:
        hosts = load_state(state_file).hosts
    except FileNotFoundError:
        return {}
    return {name: list(host.applied_ops) for name, host in hosts.items()}


async def start_rollout(url: str, plans: Path) -> int:
    db = create_database(url)
    try:
        async with unit_of_work(db) as session:
            rollout = await requests.start_rollout(
                session,
                plan=load_plans(plans)["serial"].plan,
                actor=Actor(OPERATOR),
                operators=frozenset({OPERATOR}),
                now=dt.datetime.now(dt.UTC),
            )
        assert isinstance(rollout, Rollout), rollout
        return rollout.id
    finally:
        await db.dispose()


async def rollout_state(url: str, rollout_id: int) -> str:
    db = create_database(url)
    try:
        async with read_only(db) as session:
            rollout = await session.get(Rollout, rollout_id)
            assert rollout is not None
            return rollout.state
    finally:
        await db.dispose()


def test_the_standby_finishes_a_rollout_whose_leader_was_killed_and_no_host_is_patched_twice(
    tmp_path: Path,
) -> None:
    plans = tmp_path / "plans"
    plans.mkdir()
    (plans / "serial.yml").write_text(SERIAL)
    fleet = tmp_path / "fleet.json"
    with fresh_database_url("postgresql", tmp_path) as url:
        migrate(url, tmp_path)
        env = base_env(
            url,
            PATCHGATE_PLANS_DIR=str(plans),
            PATCHGATE_RECORDING_STATE_FILE=str(fleet),
            PATCHGATE_RECORDING_APPLY_DELAY="1.0",
        )
        with ServeProcess(env, cwd=tmp_path, name="a") as a:
            first = a.wait_leader(timeout=45)
            with ServeProcess(env, cwd=tmp_path, name="b") as b:
                b.wait_ready()
                rollout_id = asyncio.run(start_rollout(url, plans))

                # Kill the leader once it has patched a host and is on the next ones.
                wait_for("a first host patched", lambda: any(applied(fleet).values()), timeout=45)
                a.kill()
                killed_at = time.monotonic()
                done_before = {h for h, ops in applied(fleet).items() if ops}
                assert done_before < HOSTS, "the rollout ended before the kill"

                second = b.wait_leader(timeout=TAKEOVER_BOUND)
                assert time.monotonic() - killed_at < TAKEOVER_BOUND
                assert second["epoch"] > first["epoch"]

                def ended() -> str | None:
                    state = asyncio.run(rollout_state(url, rollout_id))
                    return (
                        state
                        if state in {"succeeded", "succeeded_with_failures", "failed", "aborted"}
                        else None
                    )

                try:
                    state = wait_for("the standby to finish the rollout", ended, timeout=60)
                except AssertionError as exc:
                    raise AssertionError(f"{exc}\n{b.log()}") from None
                assert state == "succeeded", b.log()
                ops = applied(fleet)
                assert {h: len(ops.get(h, [])) for h in HOSTS} == dict.fromkeys(HOSTS, 1)
                assert f"leader acquired with epoch {second['epoch']}" in b.log()
                assert b.terminate(timeout=45) == 0
