"""`patchgate rollout …` as a real process: reads against a real SQLite database, decisions
through serve's API (``tests.apikit.ThreadedApi``, over the same database) with a token."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from bot.settings import Settings
from integrations.inventory import FileInventory
from integrations.testing.executor import RecordingExecutor, RecordingHealthChecker
from tests.apikit import ThreadedApi, issue_token
from workflows.clock import SystemClock
from workflows.db import create_database, read_only
from workflows.engine import Engine, EngineDeps
from workflows.models import Event, Rollout

REPO = Path(__file__).resolve().parents[2]
OPERATOR = "U0OPERATOR"
CANARY_APPROVER = "U0123ABCDE"  # examples/plans/weekly.yml canary approver


def _env(tmp: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PATCHGATE_")}
    env.update(
        {
            "PATCHGATE_DATABASE_URL": f"sqlite:///{tmp / 'pg.db'}",
            "PATCHGATE_PLANS_DIR": str(REPO / "examples/plans"),
            "PATCHGATE_INVENTORY": str(REPO / "examples/inventory"),
        }
    )
    env.update(extra)
    return env


def cli(tmp: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli.main", *args],
        env=_env(tmp, **extra),
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def migrated(tmp_path: Path) -> Path:
    assert cli(tmp_path, "db", "upgrade").returncode == 0
    return tmp_path


@pytest.fixture
def server(migrated: Path) -> Iterator[ThreadedApi]:
    """serve's API on the CLI's database; operators from ITS settings."""
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=f"sqlite:///{migrated / 'pg.db'}",
        plans_dir=REPO / "examples/plans",
        operators=OPERATOR,
    )
    with ThreadedApi(settings) as api:
        yield api


def as_user(server: ThreadedApi, user: str) -> dict[str, str]:
    """The environment of a CLI deciding as ``user``: the server and the user's token."""
    token = issue_token(server.settings.database_url, user)
    return {"PATCHGATE_SERVER_URL": server.url, "PATCHGATE_TOKEN": token}


def test_dry_run_prints_rings_and_batches_and_writes_nothing(tmp_path: Path) -> None:
    result = cli(tmp_path, "rollout", "start", "weekly", "--dry-run", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert [r["name"] for r in data["rings"]] == ["dev", "staging", "canary", "production"]
    assert not (tmp_path / "pg.db").exists()


@pytest.mark.parametrize("verb", ["start weekly", "approve 1 --hash 0123abcd", "abort 1"])
def test_a_decision_without_server_and_token_is_refused_in_one_line_with_exit_2(
    migrated: Path, verb: str
) -> None:
    """The database credentials alone decide nothing (and the OS user counts for nothing)."""
    result = cli(migrated, "rollout", *verb.split(), PATCHGATE_OPERATORS=OPERATOR)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "PATCHGATE_SERVER_URL and PATCHGATE_TOKEN are required" in result.stderr
    assert _query(migrated, sa.select(Event.kind)) == []


def test_start_by_a_non_operator_is_refused_and_audited(
    migrated: Path, server: ThreadedApi
) -> None:
    # the CLI's own PATCHGATE_OPERATORS names the user: the server's settings do not
    env = as_user(server, "U0SOMEONE")
    result = cli(migrated, "rollout", "start", "weekly", PATCHGATE_OPERATORS="U0SOMEONE", **env)
    assert result.returncode == 1 and "not an operator" in result.stderr
    kinds = _query(migrated, sa.select(Event.kind).order_by(Event.id))
    assert kinds == ["token.created", "token.used", "request.refused"]
    assert _query(migrated, sa.select(Rollout.id)) == []


def test_unknown_plan_is_one_clear_line(migrated: Path, server: ThreadedApi) -> None:
    result = cli(migrated, "rollout", "start", "nightly", **as_user(server, OPERATOR))
    assert result.returncode == 1
    assert "no plan named 'nightly'" in result.stderr and "weekly" in result.stderr


def test_cli_approval_is_bound_to_the_shown_hash_and_moves_the_rollout(
    migrated: Path, server: ThreadedApi
) -> None:
    operator = as_user(server, OPERATOR)
    started = cli(migrated, "rollout", "start", "weekly", "--json", **operator)
    assert started.returncode == 0, started.stderr
    rollout_id = json.loads(started.stdout)["rollout_id"]
    _run_engine(migrated)
    shown = json.loads(cli(migrated, "rollout", "show", str(rollout_id), "--json").stdout)
    assert shown["state"] == "awaiting_approval"
    canary = next(r for r in shown["rings"] if r["name"] == "canary")
    gate_hash = canary["gate"]["patchset_hash"]

    approver = as_user(server, CANARY_APPROVER)
    approve = ("rollout", "approve", str(rollout_id), "--hash")
    stale = cli(migrated, *approve, "deadbeefdeadbeef", **approver)
    assert stale.returncode == 1 and "patch set" in stale.stderr
    ok = cli(migrated, *approve, gate_hash[:10], **approver)
    assert ok.returncode == 0, ok.stderr
    _run_engine(migrated)
    shown = json.loads(cli(migrated, "rollout", "show", str(rollout_id), "--json").stdout)
    states = {r["name"]: r["state"] for r in shown["rings"]}
    assert states["canary"] == "done" and states["production"] == "pending"


def test_abort_from_the_cli_is_applied_by_the_engine(migrated: Path, server: ThreadedApi) -> None:
    operator = as_user(server, OPERATOR)
    started = cli(migrated, "rollout", "start", "weekly", "--json", **operator)
    rollout_id = json.loads(started.stdout)["rollout_id"]
    aborted = cli(
        migrated, "rollout", "abort", str(rollout_id), "--reason", "wrong week", **operator
    )
    assert aborted.returncode == 0, aborted.stderr
    _run_engine(migrated)
    listed = json.loads(cli(migrated, "rollout", "list", "--json").stdout)
    assert listed[0]["state"] == "aborted" and "wrong week" in listed[0]["reason"]


def _run_engine(tmp: Path) -> None:
    """Stand in for the leader: one engine, run until idle, on the CLI's database."""
    import asyncio

    async def go() -> None:
        db = create_database(f"sqlite:///{tmp / 'pg.db'}")
        executor = RecordingExecutor.demo(state_file=tmp / "hosts.json")
        engine = Engine(
            EngineDeps(
                db=db,
                executor=executor,
                health=RecordingHealthChecker(executor),
                inventory=FileInventory([REPO / "examples/inventory"]),
                clock=SystemClock(),
            )
        )
        try:
            await engine.run_until_idle()
        finally:
            await db.dispose()

    asyncio.run(go())


def _query(tmp: Path, query: sa.Select[tuple[object]]) -> list[object]:
    import asyncio

    async def go() -> list[object]:
        db = create_database(f"sqlite:///{tmp / 'pg.db'}")
        try:
            async with read_only(db) as session:
                return list(await session.scalars(query))
        finally:
            await db.dispose()

    return asyncio.run(go())
