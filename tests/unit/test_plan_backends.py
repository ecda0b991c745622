"""Plans choose backends (issue 19): names checked against the catalog, options checked
by the backend, and nothing asked of a backend that it cannot do, each a located line."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from integrations.backends import build_backends
from workflows.backends import Capabilities
from workflows.errors import PlanError
from workflows.plans import load_plan, load_plans


class Declared:
    """A backend that declares what it is told to (pure, like every declaration)."""

    def __init__(self, name: str, caps: Capabilities, *, reboots_option: bool = False) -> None:
        self.name = name
        self.caps = caps
        self.reboots_option = reboots_option

    def capabilities(self, options: Mapping[str, Any]) -> Capabilities:
        if self.reboots_option and options.get("reboot_in_job"):
            return Capabilities(**{**self.caps.__dict__, "reboots_itself": True})
        return self.caps

    def check_options(self, options: Mapping[str, Any]) -> Sequence[str]:
        known = {"playbook", "reboot_in_job"}
        return [f"unknown option {k!r}" for k in sorted(options) if k not in known]


def catalog() -> dict[str, Any]:
    return build_backends(
        extra={
            "playbooks": Declared(
                "playbooks", Capabilities(rollback=True, reboot=False), reboots_option=True
            ),
            "fire-and-forget": Declared("fire-and-forget", Capabilities(health=False)),
        }
    )


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "plan.yml"
    path.write_text(
        textwrap.dedent(
            """\
            name: weekly
            rings:
              - name: dev
                hosts: group:dev
            """
        )
        + textwrap.dedent(body)
    )
    return path


def errors(path: Path) -> list[str]:
    with pytest.raises(PlanError) as caught:
        load_plan(path, catalog())
    return caught.value.messages


def test_a_plan_without_backend_fields_is_patched_over_ssh(tmp_path: Path) -> None:
    plan = load_plan(write(tmp_path, ""), catalog())
    assert plan.backend == "ssh" and plan.backends == {}
    assert plan.backend_for("dev") == "ssh"
    assert plan.configured_backends() == {"ssh"}


def test_rings_may_choose_their_own_backend_with_options(tmp_path: Path) -> None:
    path = tmp_path / "plan.yml"
    path.write_text(
        textwrap.dedent(
            """\
            name: weekly
            reboot: never
            backends:
              playbooks: {playbook: patch.yml}
            rings:
              - name: dev
                hosts: group:dev
              - name: prod
                hosts: group:prod
                backend: playbooks
            """
        )
    )
    plan = load_plan(path, catalog())
    assert [plan.backend_for(r) for r in plan.rings] == ["ssh", "playbooks"]
    assert plan.backend_options("playbooks") == {"playbook": "patch.yml"}
    assert plan.configured_backends() == {"ssh", "playbooks"}


def test_an_unknown_backend_is_a_located_error_naming_the_known_ones(tmp_path: Path) -> None:
    path = write(tmp_path, "backend: chef\n")
    assert errors(path) == [
        f"{path}:5 backend: unknown backend 'chef' (known: {', '.join(sorted(catalog()))})"
    ]


def test_a_rings_unknown_backend_points_at_the_ring(tmp_path: Path) -> None:
    path = write(tmp_path, "")
    path.write_text(
        path.read_text().replace("hosts: group:dev", "hosts: group:dev\n    backend: chef")
    )
    (message,) = errors(path)
    assert message.startswith(f"{path}:5 rings[0].backend: unknown backend 'chef'")


def test_automatic_rollback_on_a_backend_that_cannot_roll_back_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "backend: fire-and-forget\nreboot: never\n")
    (message,) = errors(path)
    assert message.startswith(f"{path}:5 backend: backend 'fire-and-forget' cannot roll back")
    assert "on_patch_failure" in message and "rollback: none" in message
    ok = write(
        tmp_path, "backend: fire-and-forget\nreboot: never\nrollback: none\nhealth_checks: []\n"
    )
    assert load_plan(ok, catalog()).backend == "fire-and-forget"


def test_reboots_need_a_backend_that_reboots_or_a_job_that_does(tmp_path: Path) -> None:
    path = write(tmp_path, "backend: playbooks\nreboot: always\n")
    (message,) = errors(path)
    assert "cannot reboot hosts, but reboot is 'always'" in message
    ok = write(
        tmp_path,
        "backend: playbooks\nreboot: always\nbackends:\n  playbooks: {reboot_in_job: true}\n",
    )
    assert load_plan(ok, catalog()).reboot == "always"


def test_health_checks_on_a_backend_that_cannot_run_them_are_refused(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "backend: fire-and-forget\nreboot: never\nrollback: none\n"
        "health_checks:\n  - {name: web, type: tcp, port: 443}\n",
    )
    (message,) = errors(path)
    assert "cannot run PatchGate's health checks, but ring(s) dev have some" in message


def test_a_backends_options_are_checked_by_the_backend_where_they_are_written(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, "backends:\n  ssh: {user: root}\n")
    (message,) = errors(path)
    assert message.startswith(f"{path}:6 backends.ssh: unknown option 'user'")


def test_backend_names_have_a_grammar(tmp_path: Path) -> None:
    path = write(tmp_path, "backend: 'Ansible Tower'\n")
    with pytest.raises(PlanError) as caught:
        load_plan(path)  # the grammar needs no catalog
    assert "is not a backend name" in caught.value.messages[0]


def test_a_directory_of_plans_is_checked_against_the_catalog_too(tmp_path: Path) -> None:
    write(tmp_path, "backend: chef\n")
    with pytest.raises(PlanError) as caught:
        load_plans(tmp_path, catalog())
    assert "unknown backend 'chef'" in caught.value.messages[0]
    assert load_plans(tmp_path)  # without a catalog only the plan's shape is checked
