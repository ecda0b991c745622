"""Detached package operations: the op-status format read back from the host, op ids,
and polling that survives dropped connections (bounded)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import cast

import pytest

from integrations.packages import CommandOutput
from integrations.ssh import detached
from integrations.ssh.connection import SshConnection
from workflows.errors import CommandFailed, ExecutorError, HostUnreachable


def test_the_status_of_a_finished_op_carries_exit_code_before_versions_and_output() -> None:
    text = "EXIT 100\n--before\ndemo-app=1.0\nnew-pkg=\n--output\nE: boom\nline 2\n"
    status = detached.OpStatus.parse(text)
    assert (status.state, status.exit_code) == ("EXIT", 100)
    assert status.before == {"demo-app": "1.0", "new-pkg": None}
    assert status.output == "E: boom\nline 2"
    assert detached.OpStatus.parse("RUNNING\n").state == "RUNNING"
    assert detached.OpStatus.parse("").state == "NOOP"
    assert detached.OpStatus.parse("EXIT x\n").exit_code == -1


@pytest.mark.parametrize("op_id", ["op-1", "rollback-0123abcd", "a.b_c"])
def test_op_ids_name_a_directory_under_the_ops_dir(op_id: str) -> None:
    assert detached.op_dir(op_id) == f"{detached.OPS_DIR}/{op_id}"


@pytest.mark.parametrize("op_id", ["", "../etc", "a/b", "-rf", "a b", "x" * 200, "op;reboot"])
def test_an_op_id_that_could_leave_the_ops_dir_is_refused(op_id: str) -> None:
    with pytest.raises(ExecutorError, match="bad operation id"):
        detached.op_dir(op_id)


class _Scripted:
    """A connection answering the status script from a list (an exception = lost)."""

    host = "h1"

    def __init__(self, answers: Iterator[str | Exception], log: list[str]) -> None:
        self.answers = answers
        self.log = log

    def run(self, line: str, *, timeout: float) -> CommandOutput:
        self.log.append("status")
        answer = next(self.answers)
        if isinstance(answer, Exception):
            raise answer
        return CommandOutput(0, answer)

    def close(self) -> None:
        self.log.append("close")


def _as_conn(fake: _Scripted) -> SshConnection:
    return cast(SshConnection, fake)


def test_polling_reconnects_after_a_drop_and_returns_the_new_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("integrations.ssh.detached.time.sleep", lambda _s: None)  # the back-off
    log: list[str] = []
    script: list[str | Exception] = [
        "RUNNING",
        HostUnreachable("h1", "connection lost"),
        "EXIT 0\n--before\n",
    ]
    answers = iter(script)
    first = _Scripted(answers, log)
    second = _Scripted(answers, log)

    def reconnect() -> SshConnection:
        log.append("reconnect")
        return _as_conn(second)

    status, conn = detached.wait(
        _as_conn(first),
        "/var/lib/patchgate/ops/op-1",
        reconnect=reconnect,
        timeout=60,
        poll_interval=0,
    )
    assert (status.state, status.exit_code) == ("EXIT", 0) and conn is _as_conn(second)
    assert log == ["status", "status", "close", "reconnect", "status"]


def test_polling_gives_up_after_repeated_drops_and_on_its_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("integrations.ssh.detached.time.sleep", lambda _s: None)
    log: list[str] = []
    lost: list[str | Exception] = [HostUnreachable("h1", "connection lost")] * 10
    conn = _as_conn(_Scripted(iter(lost), log))
    with pytest.raises(HostUnreachable):
        detached.wait(conn, "/d", reconnect=lambda: conn, timeout=600, poll_interval=0)
    assert log.count("status") == 6  # the first try and five re-connections
    busy: list[str | Exception] = ["RUNNING"] * 10
    running = _as_conn(_Scripted(iter(busy), []))
    with pytest.raises(CommandFailed, match="still running"):
        detached.wait(running, "/d", reconnect=lambda: running, timeout=0, poll_interval=0)
