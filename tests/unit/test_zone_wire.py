"""The JSON wire to zone workers: every port value and executor error survives the
trip (through json.dumps, as Celery's JSON serializer sends it), and a worker's apply is
idempotent by op id whatever the executor."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from integrations.testing.executor import RecordingExecutor, RecordingHealthChecker
from integrations.zones.wire import (
    OPS,
    decode_host,
    decode_reply,
    encode_error,
    encode_host,
    encode_value,
)
from integrations.zones.worker import ZoneWorker
from workflows.errors import CommandFailed, ExecutorError, HostKeyRejected, HostUnreachable
from workflows.ports import (
    ApplyResult,
    HealthResult,
    HostAdvisory,
    HostFacts,
    InventoryHost,
    Preflight,
    RollbackResult,
    Simulation,
    UpgradablePackage,
)


def trip(value: Any) -> Any:
    return json.loads(json.dumps(encode_value(value)))


def test_a_host_survives_the_trip_with_its_sets_and_vars() -> None:
    host = InventoryHost(
        name="web-1",
        address="10.0.0.5",
        port=2222,
        groups=frozenset({"web", "prod"}),
        tags=frozenset({"pci"}),
        criticality="high",
        vars={"patchgate_zone": "dmz", "nested": {"a": [1, 2]}},
    )
    assert decode_host(json.loads(json.dumps(encode_host(host)))) == host


def test_a_host_with_unknown_fields_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown fields"):
        decode_host({"name": "x", "shell": "rm -rf /"})


VALUES: list[tuple[str, Any]] = [
    ("facts", HostFacts("debian", "12", "amd64", "6.1", "apt", "b1", 3.5, True)),
    ("list_upgradable", [UpgradablePackage("openssl", "3.0.11", "3.0.13", security=True)]),
    ("simulate", Simulation(installs={"openssl": "3.0.13"}, removes=("old",))),
    ("installed", {"openssl": "3.0.13", "gone": None}),
    ("preflight", Preflight(ok=False, problems=("locked",), unavailable=("a=1",))),
    ("apply", ApplyResult("op-1", {"a": None}, {"a": "2"}, 0, "done", True)),
    ("apply_status", None),
    ("rollback", RollbackResult(ok=True, after={"a": "1"}, exit_code=0)),
    ("reboot_required", True),
    (
        "host_advisories",
        [
            HostAdvisory(
                "RHSA-1",
                {"openssl": "3.0.13"},
                ("CVE-2024-1",),
                "high",
                dt.datetime(2026, 1, 2, tzinfo=dt.UTC),
            )
        ],
    ),
    ("reboot", "new-boot-id"),
    ("health", [HealthResult("http", False, "503")]),
]


@pytest.mark.parametrize(("op", "value"), VALUES, ids=[op for op, _ in VALUES])
def test_every_port_value_comes_back_as_the_same_typed_value(op: str, value: Any) -> None:
    assert decode_reply(op, {"ok": trip(value)}) == value


def test_every_operation_has_a_decoder() -> None:
    assert set(OPS) == {op for op, _ in VALUES}


@pytest.mark.parametrize(
    "error",
    [
        ExecutorError("h", "boom"),
        HostUnreachable("h", "refused"),
        HostKeyRejected("h", "changed"),
        CommandFailed("h", "apt failed", exit_code=100, output_tail="E: x"),
    ],
)
def test_executor_errors_come_back_as_the_same_type_and_message(error: ExecutorError) -> None:
    with pytest.raises(type(error)) as caught:
        decode_reply("facts", json.loads(json.dumps({"error": encode_error(error)})))
    assert str(caught.value) == str(error)
    if isinstance(error, CommandFailed):
        assert isinstance(caught.value, CommandFailed)
        assert (caught.value.exit_code, caught.value.output_tail) == (100, "E: x")


def _call(op: str, host: str, **args: Any) -> dict[str, Any]:
    return {"op": op, "host": encode_host(InventoryHost(name=host)), "args": args}


def test_a_worker_answers_an_apply_it_already_ran_from_the_op_status_without_applying() -> None:
    executor = RecordingExecutor.demo()
    worker = ZoneWorker(executor, RecordingHealthChecker(executor), zone="dmz", slots=2)
    try:
        call = _call("apply", "web-1", patchset={"openssl": "3.0.13-1"}, op_id="op-7")
        first = worker.run("t1", call)
        again = worker.run("t2", call)  # the same call redelivered or re-sent
    finally:
        worker.close()
    assert first == again and first["ok"]["op_id"] == "op-7"
    assert executor.apply_count("web-1") == 1
    assert [c for c in executor.calls if c == ("web-1", "apply")] == [("web-1", "apply")]


def test_a_worker_sends_an_executor_error_back_instead_of_raising() -> None:
    executor = RecordingExecutor.demo()
    executor.fail("web-1", "facts", "unreachable")
    worker = ZoneWorker(executor, RecordingHealthChecker(executor), zone="dmz", slots=1)
    try:
        reply = worker.run("t1", _call("facts", "web-1"))
    finally:
        worker.close()
    assert reply["error"]["type"] == "HostUnreachable"
    assert "connection refused" in reply["error"]["message"]
