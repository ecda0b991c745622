"""`patchgate rollout …` as a real process against a real SQLite database."""

from __future__ import annotations

import getpass
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from integrations.inventory import FileInventory
from integrations.testing.executor import RecordingExecutor, RecordingHealthChecker
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
            "PATCHGATE_OPERATORS": OPERATOR,
            "PATCHGATE_CLI_IDENTITIES": f"{getpass.getuser()}={OPERATOR}",
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


def test_dry_run_prints_rings_and_batches_and_writes_nothing(tmp_path: Path) -> None:
    result = cli(tmp_path, "rollout", "start", "weekly", "--dry-run", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert [r["name"] for r in data["rings"]] == ["dev", "staging", "canary", "production"]
    assert not (tmp_path / "pg.db").exists()


def test_start_by_an_unmapped_os_user_is_refused_in_one_line(migrated: Path) -> None:
    result = cli(migrated, "rollout", "start", "weekly", PATCHGATE_CLI_IDENTITIES="")
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0
    assert "not mapped" in result.stderr


def test_start_by_a_non_operator_is_refused_and_audited(migrated: Path) -> None:
    result = cli(migrated, "rollout", "start", "weekly", PATCHGATE_OPERATORS="U0SOMEONE")
    assert result.returncode == 1 and "not an operator" in result.stderr
    kinds = _query(migrated, sa.select(Event.kind))
    assert kinds == ["request.refused"]
    assert _query(migrated, sa.select(Rollout.id)) == []


def test_unknown_plan_is_one_clear_line(migrated: Path) -> None:
    result = cli(migrated, "rollout", "start", "nightly")
    assert result.returncode == 1
    assert "no plan named 'nightly'" in result.stderr and "weekly" in result.stderr


def test_cli_approval_is_bound_to_the_shown_hash_and_moves_the_rollout(migrated: Path) -> None:
    started = cli(migrated, "rollout", "start", "weekly", "--json")
    assert started.returncode == 0, started.stderr
    rollout_id = json.loads(started.stdout)["rollout_id"]
    _run_engine(migrated)
    shown = json.loads(cli(migrated, "rollout", "show", str(rollout_id), "--json").stdout)
    assert shown["state"] == "awaiting_approval"
    canary = next(r for r in shown["rings"] if r["name"] == "canary")
    gate_hash = canary["gate"]["patchset_hash"]

    ids = f"{getpass.getuser()}={CANARY_APPROVER}"
    stale = cli(
        migrated,
        "rollout",
        "approve",
        str(rollout_id),
        "--hash",
        "deadbeefdeadbeef",
        PATCHGATE_CLI_IDENTITIES=ids,
    )
    assert stale.returncode == 1 and "patch set" in stale.stderr
    ok = cli(
        migrated,
        "rollout",
        "approve",
        str(rollout_id),
        "--hash",
        gate_hash[:10],
        PATCHGATE_CLI_IDENTITIES=ids,
    )
    assert ok.returncode == 0, ok.stderr
    _run_engine(migrated)
    shown = json.loads(cli(migrated, "rollout", "show", str(rollout_id), "--json").stdout)
    states = {r["name"]: r["state"] for r in shown["rings"]}
    assert states["canary"] == "done" and states["production"] == "pending"


def test_abort_from_the_cli_is_applied_by_the_engine(migrated: Path) -> None:
    started = cli(migrated, "rollout", "start", "weekly", "--json")
    rollout_id = json.loads(started.stdout)["rollout_id"]
    aborted = cli(migrated, "rollout", "abort", str(rollout_id), "--reason", "wrong week")
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
