"""A real ``patchgate serve`` and people deciding from their terminals (issue 15, item 1):
an administrator issues tokens with ``patchgate token create``; the operator starts the
example weekly rollout with ``patchgate rollout start`` and the plan's approvers approve
its gates with ``patchgate rollout approve``, each with only PATCHGATE_SERVER_URL and their
own PATCHGATE_TOKEN (no database credentials). The requester's own approval and a revoked
token are refused on the way; every decision is audited with the token that made it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.dbutil import BACKENDS, fresh_database_url
from tests.e2e.harness import (
    OPERATOR,
    ServeProcess,
    base_env,
    create_token,
    decider_env,
    migrate,
    patchgate,
    wait_for,
)

APPROVER_A, APPROVER_B = "U0123ABCDE", "U0456FGHIJ"  # examples/plans/weekly.yml


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with fresh_database_url(request.param, tmp_path) as url:
        yield url


def test_people_start_and_approve_a_rollout_through_serve_with_their_own_tokens(
    database_url: str, tmp_path: Path
) -> None:
    migrate(database_url, tmp_path)
    tokens = {
        user: create_token(database_url, user, tmp_path)
        for user in (OPERATOR, APPROVER_A, APPROVER_B)
    }
    admin = base_env(database_url, PATCHGATE_RECORDING_STATE_FILE=str(tmp_path / "fleet.json"))
    with ServeProcess(admin, cwd=tmp_path) as serve:
        serve.wait_ready()
        serve.wait_leader(timeout=15)

        def cli(user: str, *argv: str) -> tuple[int, str]:
            done = patchgate(decider_env(serve, tokens[user]), *argv, cwd=tmp_path)
            return done.returncode, (done.stdout + done.stderr).strip()

        def show() -> dict[str, object]:
            done = patchgate(admin, "rollout", "show", "1", "--json", cwd=tmp_path)
            assert done.returncode == 0, done.stderr
            data: dict[str, object] = json.loads(done.stdout)
            return data

        code, said = cli(OPERATOR, "rollout", "start", "weekly")
        assert (code, said.split(";")[0]) == (0, "rollout #1 of plan weekly scheduled"), said

        def gate_open(ring: str) -> str | None:
            data = show()
            for r in data["rings"]:  # type: ignore[attr-defined]
                if r["name"] == ring and r["gate"] and r["gate"]["state"] == "open":
                    return str(r["gate"]["patchset_hash"])[:12]
            return None

        shown = wait_for("the canary gate", lambda: gate_open("canary"), timeout=60)
        code, said = cli(OPERATOR, "rollout", "approve", "1", "--hash", shown)
        assert (code, said) == (1, f"patchgate: {OPERATOR} is not an approver for ring 'canary'")
        code, said = cli(APPROVER_A, "rollout", "approve", "1", "--hash", shown)
        assert (code, said) == (0, "Gate for ring canary approved (1/1)")

        shown = wait_for("the production gate", lambda: gate_open("production"), timeout=60)
        old = create_token(database_url, APPROVER_B, tmp_path)
        revoked = patchgate(admin, "token", "revoke", old[4:16], cwd=tmp_path)
        assert revoked.returncode == 0, revoked.stderr
        done = patchgate(
            decider_env(serve, old), "rollout", "approve", "1", "--hash", shown, cwd=tmp_path
        )
        assert (done.returncode, done.stderr.strip()) == (
            1,
            f"patchgate: the server refused the token: token {old[4:16]} is revoked",
        )
        code, said = cli(APPROVER_A, "rollout", "approve", "1", "--hash", shown)
        assert code == 0 and "(1/2); waiting for more approvals" in said, said
        code, said = cli(APPROVER_B, "rollout", "approve", "1", "--hash", shown)
        assert (code, said) == (0, "Gate for ring production approved (2/2)")

        def finished() -> bool:
            return show()["state"] == "succeeded"

        wait_for("the rollout to succeed", finished, timeout=60)
        assert serve.terminate(timeout=30) == 0

    events = patchgate(admin, "audit", "verify", "--json", cwd=tmp_path)
    assert events.returncode == 0, events.stderr
    listed = json.loads(patchgate(admin, "token", "list", "--json", cwd=tmp_path).stdout)
    states = sorted((t["user"], t["state"], t["last_used_at"] is not None) for t in listed)
    assert states == [
        (APPROVER_A, "active", True),
        (APPROVER_B, "active", True),
        (APPROVER_B, "revoked", False),
        (OPERATOR, "active", True),
    ]
    assert all("token" not in t for t in listed)  # the secret is never listed
