"""``patchgate serve`` on PostgreSQL refuses to start without an audit key (a database
writer could otherwise rewrite the unkeyed audit log unseen), unless the operator opts out
with PATCHGATE_AUDIT_UNKEYED=true, which starts and warns. Commands that append refuse the
same way and write nothing; commands that only read still run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.dbutil import fresh_database_url
from tests.e2e.harness import ServeProcess, base_env, free_port, migrate, patchgate

REFUSAL = "patchgate: PATCHGATE_AUDIT_KEY (or PATCHGATE_AUDIT_KEY_FILE): required on PostgreSQL"


@pytest.fixture
def keyless_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """serve's environment on a migrated PostgreSQL database, with no audit key."""
    with fresh_database_url("postgresql", tmp_path) as url:
        migrate(url, tmp_path)
        env = base_env(
            url,
            PATCHGATE_PORT=str(free_port()),
            PATCHGATE_RECORDING_STATE_FILE=str(tmp_path / "fleet.json"),
        )
        del env["PATCHGATE_AUDIT_KEY"]
        yield env


def test_serve_on_postgresql_without_an_audit_key_refuses_with_one_line_and_exit_2(
    keyless_env: dict[str, str], tmp_path: Path
) -> None:
    result = patchgate(keyless_env, "serve", cwd=tmp_path, timeout=60)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(REFUSAL)
    assert "PATCHGATE_AUDIT_UNKEYED=true" in lines[0]


def test_serve_on_postgresql_with_the_unkeyed_opt_out_starts_and_warns(
    keyless_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**keyless_env, "PATCHGATE_AUDIT_UNKEYED": "true"}
    with ServeProcess(env, cwd=tmp_path) as serve:
        serve.wait_ready()
        log = serve.log()
    assert "WARNING" in log and "PATCHGATE_AUDIT_UNKEYED=true and no PATCHGATE_AUDIT_KEY" in log


def test_an_appending_command_on_postgresql_without_a_key_refuses_and_writes_nothing(
    keyless_env: dict[str, str], tmp_path: Path
) -> None:
    created = patchgate(keyless_env, "token", "create", "--user", "U0ALICE01", cwd=tmp_path)
    assert created.returncode == 2
    assert created.stderr.startswith(REFUSAL), created.stderr
    listed = patchgate(keyless_env, "token", "list", "--json", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr  # reading needs no key
    assert listed.stdout.strip() == "[]"
    verified = patchgate(keyless_env, "audit", "verify", cwd=tmp_path)
    assert verified.returncode == 0, verified.stdout + verified.stderr
