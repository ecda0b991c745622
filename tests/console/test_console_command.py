"""``patchgate console`` as a command: it refuses real Slack tokens, warns when it listens
beyond loopback, and ``--tour`` plays a rollout to its rollback without anyone clicking."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.console.conftest import (
    ALICE,
    BOB,
    ONCALL,
    OPERATOR,
    console_env,
    gate_message,
    start_console,
    stop,
)
from tests.e2e.harness import REPO


def run(tmp: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli.main", "console", *args],
        capture_output=True,
        text=True,
        env=console_env(**env),
        cwd=tmp,
        timeout=60,
        check=False,
    )


def test_the_console_refuses_to_start_when_real_slack_tokens_are_set(tmp_path: Path) -> None:
    for variable in ("PATCHGATE_SLACK_BOT_TOKEN", "PATCHGATE_SLACK_APP_TOKEN"):
        result = run(tmp_path, "--data-dir", str(tmp_path / "data"), **{variable: "xoxb-real"})
        assert result.returncode == 2
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert variable in lines[0] and "real Slack tokens" in lines[0]
        assert "xoxb-real" not in result.stderr + result.stdout
        assert not (tmp_path / "data").exists()  # nothing was created


def test_the_console_refuses_a_lab_directory_without_a_lab(tmp_path: Path) -> None:
    result = run(tmp_path, "--lab", str(tmp_path))
    assert result.returncode == 2
    assert "no lab there" in result.stderr and "python -m tests.console.lab" in result.stderr
    assert not (tmp_path / "console.db").exists()


def test_the_console_is_listed_in_the_help() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli.main", "--help"],
        capture_output=True,
        text=True,
        env=console_env(),
        cwd=REPO,
        check=False,
    )
    assert "console" in result.stdout


def test_listening_beyond_loopback_is_warned_about(tmp_path: Path) -> None:
    console = start_console(tmp_path, "--host", "0.0.0.0", "--data-dir", str(tmp_path / "d"))
    try:
        assert "warning: the console listens on 0.0.0.0" in console.log.read_text()
        assert console.state(OPERATOR)["user"] == OPERATOR
    finally:
        stop(console)


def test_the_tour_plays_approvals_a_health_failure_and_a_rollback(tmp_path: Path) -> None:
    console = start_console(tmp_path, "--tour", "--pace", "0.2")
    try:
        console.wait(
            "the rollback alert in #oncall",
            lambda: console.messages("C0ONCALL"),
            within=120,
        )
        alert = console.messages("C0ONCALL")[0]["text"]
        assert "rolling back ring production" in alert and "<!subteam^S0ONCALL>" in alert
        # the requester was refused, told alone; the approvers' votes were taken
        told = [e["text"] for e in console.state(OPERATOR)["ephemeral"]]
        assert any("not an approver" in t for t in told)
        assert not any("not an approver" in e["text"] for e in console.state(ALICE)["ephemeral"])
        assert console.state(BOB)["ephemeral"]
        assert gate_message(console) is None  # every gate was decided: no buttons left
        console.wait(
            "the rollout rolled back",
            lambda: "rolled_back" in console.messages()[0]["text"],
        )
        assert "Tour:" not in console.state(ONCALL)["caption"]
        assert "rollback alert" in console.state(ONCALL)["caption"]
    finally:
        stop(console)
    assert console.process.returncode == 0
