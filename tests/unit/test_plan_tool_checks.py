"""The ``tool`` health check (issue 20): the backend's own view of a host, allowed only
in rings whose backend reports one, taking none of the other kinds' fields, and leaving
the hash of plans without it unchanged."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from integrations.backends import build_backends
from tests.unit.test_plan_backends import Declared, write
from workflows.backends import Capabilities
from workflows.errors import PlanError
from workflows.plans import HealthCheck, load_plan, plan_json

HEADER = "reboot: never\nrollback: none\n"


def catalog() -> dict[str, Any]:
    return build_backends(
        extra={
            "watched": Declared("watched", Capabilities(status=True)),
            "statusonly": Declared("statusonly", Capabilities(health=False, status=True)),
            "blind": Declared("blind", Capabilities()),
        }
    )


def errors(path: Path) -> list[str]:
    with pytest.raises(PlanError) as caught:
        load_plan(path, catalog())
    return caught.value.messages


def test_a_tool_check_loads_on_a_backend_that_reports_host_status(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HEADER + "backend: watched\nhealth_checks:\n"
        "  - {name: agent, type: tool, retries: 6, interval: 30s}\n",
    )
    (check,) = load_plan(path, catalog()).health_checks
    assert (check.type, check.retries, check.interval.total_seconds()) == ("tool", 6, 30.0)
    assert check.url is None and check.port is None and check.argv is None


def test_a_tool_check_on_a_backend_without_status_is_a_located_error(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HEADER + "backend: blind\nhealth_checks:\n  - {name: web, type: tcp, port: 443}\n"
        "  - {name: agent, type: tool}\n",
    )
    (message,) = errors(path)
    assert message.startswith(f"{path}:10 health_checks[1]: ring dev: check 'agent' is a tool")
    assert "backend 'blind' reports no host status" in message


def test_a_rings_own_tool_check_is_located_in_the_ring(tmp_path: Path) -> None:
    path = tmp_path / "plan.yml"
    path.write_text(
        "name: weekly\n" + HEADER + "rings:\n  - name: dev\n    hosts: group:dev\n"
        "    health_checks:\n      - {name: agent, type: tool}\n"
    )
    (message,) = errors(path)  # the plan's backend: ssh, which reports no status
    assert "rings[0].health_checks[0]: ring dev" in message
    assert "backend 'ssh' reports no host status" in message


def test_a_backend_running_no_patchgate_checks_may_still_have_tool_checks(tmp_path: Path) -> None:
    only = "backend: statusonly\nhealth_checks:\n  - {name: a, type: tool}\n"
    ok = write(tmp_path, HEADER + only)
    assert load_plan(ok, catalog()).backend == "statusonly"
    mixed = write(
        tmp_path,
        HEADER + "backend: statusonly\nhealth_checks:\n  - {name: a, type: tool}\n"
        "  - {name: web, type: tcp, port: 443}\n",
    )
    (message,) = errors(mixed)
    assert "cannot run PatchGate's health checks" in message


def test_a_tool_check_takes_none_of_the_other_kinds_fields() -> None:
    for extra in ({"url": "http://x/"}, {"port": 22}, {"argv": ["true"]}, {"unit": "sshd"}):
        with pytest.raises(ValueError, match="not to a tool check"):
            HealthCheck.model_validate({"name": "agent", "type": "tool", **extra})


def test_plans_without_a_tool_check_keep_their_canonical_json_and_hash(tmp_path: Path) -> None:
    path = write(tmp_path, "health_checks:\n  - {name: web, type: tcp, port: 443}\n")
    data = json.loads(plan_json(load_plan(path, catalog())))
    # The check's canonical keys are those plans had before the tool check existed.
    assert sorted(data["health_checks"][0]) == sorted(
        [
            "name",
            "type",
            "url",
            "expect_status",
            "expect_body",
            "port",
            "argv",
            "unit",
            "timeout",
            "retries",
            "interval",
        ]
    )
