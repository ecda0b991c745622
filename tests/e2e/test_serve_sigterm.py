"""Graceful stop: SIGTERM to ``patchgate serve`` while a batch's host commands run.

The in-flight commands finish (each recording-executor apply takes a few seconds,
PATCHGATE_RECORDING_APPLY_DELAY) and their results are persisted, no new batch starts,
the leader lock is free the moment the process has exited (taken from the test at once),
the exit code is 0, and the next ``serve`` finishes the rollout with every host patched
exactly once. When the commands outlast PATCHGATE_SHUTDOWN_GRACE, ``serve`` cancels
them, still exits 0, and the next ``serve`` finishes the interrupted hosts exactly once.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa

from bot.leader import LEADER_LOCK_KEY
from tests.dbutil import BACKENDS, fresh_database_url
from tests.e2e.harness import ServeProcess, base_env, migrate, wait_for
from tests.e2e.test_serve_failover import applied, rollout_state, start_rollout
from workflows.db import create_database, read_only
from workflows.models import HostRun

BATCHED = """\
name: serial
packages: {include: ["*"]}
reboot: never
health_checks:
  - {name: ssh port open, type: tcp, port: 22}
rings:
  - {name: dev, hosts: group:dev, batch: 2}
  - {name: staging, hosts: group:staging, batch: 2}
slack: {channel: C0SERIAL01}
"""
FIRST_BATCH = {"dev-01", "dev-02"}
HOSTS = FIRST_BATCH | {"staging-01", "staging-02"}


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with fresh_database_url(request.param, tmp_path) as url:
        yield url


async def host_states(url: str) -> dict[str, str]:
    db = create_database(url)
    try:
        async with read_only(db) as session:
            rows = await session.execute(sa.select(HostRun.host_name, HostRun.state))
            return {name: state for name, state in rows.all()}
    finally:
        await db.dispose()


def lock_is_free(url: str) -> bool:
    """Take the leader lock from here, without waiting, and give it back."""
    if url.startswith("sqlite"):
        path = url.removeprefix("sqlite:///") + ".leader"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        finally:
            os.close(fd)
        return True
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT pg_try_advisory_lock(%s)", (LEADER_LOCK_KEY,)).fetchone()
        if row is None or not row[0]:
            return False
        conn.execute("SELECT pg_advisory_unlock(%s)", (LEADER_LOCK_KEY,))
        return True


def _setup(url: str, tmp_path: Path, **extra: str) -> tuple[dict[str, str], Path, Path]:
    migrate(url, tmp_path)
    plans = tmp_path / "plans"
    plans.mkdir()
    (plans / "serial.yml").write_text(BATCHED)
    fleet = tmp_path / "fleet.json"
    env = base_env(
        url,
        PATCHGATE_PLANS_DIR=str(plans),
        PATCHGATE_RECORDING_STATE_FILE=str(fleet),
        **extra,
    )
    return env, plans, fleet


def _applying(url: str) -> set[str] | None:
    states = asyncio.run(host_states(url))
    hosts = {h for h, s in states.items() if s == "applying"}
    return hosts or None


def _finish(env: dict[str, str], url: str, rollout_id: int, tmp_path: Path, epoch: int) -> None:
    with ServeProcess(env, cwd=tmp_path, name="second") as second:
        assert second.wait_leader(timeout=45)["epoch"] == epoch

        def ended() -> str | None:
            state = asyncio.run(rollout_state(url, rollout_id))
            return (
                state
                if state in {"succeeded", "succeeded_with_failures", "failed", "aborted"}
                else None
            )

        try:
            state = wait_for("the next serve to finish the rollout", ended, timeout=90)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{second.log()}") from None
        assert state == "succeeded", second.log()
        assert second.terminate(timeout=45) == 0


def test_sigterm_during_a_batch_lets_its_commands_finish_frees_the_lock_and_exits_0(
    database_url: str, tmp_path: Path
) -> None:
    env, plans, fleet = _setup(
        database_url,
        tmp_path,
        PATCHGATE_RECORDING_APPLY_DELAY="3",
        PATCHGATE_SHUTDOWN_GRACE="60",
    )
    with ServeProcess(env, cwd=tmp_path, name="first") as first:
        epoch = first.wait_leader(timeout=45)["epoch"]
        rollout_id = asyncio.run(start_rollout(database_url, plans))
        in_flight = wait_for(
            "a batch in flight", lambda: _applying(database_url), timeout=60, every=0.05
        )
        assert in_flight <= FIRST_BATCH
        assert not any(applied(fleet).values()), "the apply finished before SIGTERM"
        assert first.terminate(timeout=90) == 0
        log = first.log()
    assert "SIGTERM received" in log and "in-flight work finished" in log, log
    assert lock_is_free(database_url), "the leader lock is still held after exit"

    states = asyncio.run(host_states(database_url))
    # The batch in flight ran to the end and its results are persisted; nothing after it
    # started.
    assert {h: states[h] for h in FIRST_BATCH} == dict.fromkeys(FIRST_BATCH, "healthy"), log
    done = applied(fleet)
    assert {h: len(done.get(h, [])) for h in FIRST_BATCH} == dict.fromkeys(FIRST_BATCH, 1)
    assert not any(done.get(h) for h in HOSTS - FIRST_BATCH), done
    assert asyncio.run(rollout_state(database_url, rollout_id)) == "running"

    _finish(env, database_url, rollout_id, tmp_path, epoch + 1)
    done = applied(fleet)
    assert {h: len(done.get(h, [])) for h in HOSTS} == dict.fromkeys(HOSTS, 1)


def test_commands_outlasting_the_shutdown_grace_are_cancelled_and_redone_once_after_restart(
    tmp_path: Path,
) -> None:
    with fresh_database_url("sqlite", tmp_path) as url:
        env, plans, fleet = _setup(
            url,
            tmp_path,
            PATCHGATE_RECORDING_APPLY_DELAY="600",
            PATCHGATE_SHUTDOWN_GRACE="1",
        )
        with ServeProcess(env, cwd=tmp_path, name="first") as first:
            epoch = first.wait_leader(timeout=45)["epoch"]
            rollout_id = asyncio.run(start_rollout(url, plans))
            wait_for("a batch in flight", lambda: _applying(url), timeout=60, every=0.05)
            # Far less than the 600 s the commands would take: the grace is the bound.
            assert first.terminate(timeout=30) == 0
            log = first.log()
        assert "did not finish within 1s; cancelling it" in log, log
        assert lock_is_free(url)
        assert not any(applied(fleet).values())

        fast = {**env, "PATCHGATE_RECORDING_APPLY_DELAY": "0"}
        _finish(fast, url, rollout_id, tmp_path, epoch + 1)
        done = applied(fleet)
        assert {h: len(done.get(h, [])) for h in HOSTS} == dict.fromkeys(HOSTS, 1)
