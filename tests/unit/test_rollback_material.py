"""Rollback material: a host whose installed versions cannot be kept for a rollback is
not patched, unless its plan says ``rollback: none`` (or ``require_material: false``)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from integrations.packages import CommandOutput, driver_for
from integrations.ssh import SshExecutor, SshOptions
from tests.enginekit import Rig, make_plan
from workflows.db import Database, read_only
from workflows.errors import CommandFailed
from workflows.models import Event, HostRun
from workflows.plans import PatchPlan
from workflows.ports import InventoryHost, Preflight

DEV_ONLY = [{"name": "dev", "hosts": "group:dev", "batch": 2, "failure_budget": 2}]


def test_rollback_none_turns_every_rollback_off_and_patches_without_material() -> None:
    plan = PatchPlan.model_validate({"name": "p", "rings": DEV_ONLY, "rollback": "none"})
    assert plan.rollback.require_material is False
    assert not plan.rollback.on_patch_failure and not plan.rollback.on_health_failure
    assert not plan.rollback.ring_on_budget_exceeded


def test_rollback_material_is_required_by_default_and_can_be_waived_alone() -> None:
    assert PatchPlan.model_validate({"name": "p", "rings": DEV_ONLY}).rollback.require_material
    waived = PatchPlan.model_validate(
        {"name": "p", "rings": DEV_ONLY, "rollback": {"require_material": False}}
    )
    assert waived.rollback.require_material is False
    assert waived.rollback.on_patch_failure  # the other switches keep their defaults


def _without_material_on(rig: Rig, host_name: str) -> None:
    original = rig.executor.preflight

    async def preflight(host: InventoryHost, patchset: Mapping[str, str]) -> Preflight:
        result = await original(host, patchset)
        if host.name != host_name:
            return result
        return Preflight(
            ok=result.ok,
            problems=result.problems,
            unavailable=result.unavailable,
            rollback_material_missing=["openssl=3.0.11-1"],
        )

    rig.executor.preflight = preflight  # type: ignore[method-assign]


async def _run(rig: Rig, **plan: Any) -> tuple[dict[str, str], dict[str, str | None]]:
    rollout_id = await rig.start(make_plan(rings=DEV_ONLY, **plan))
    await rig.engine().run_until_idle()
    async with read_only(rig.db) as session:
        errors = {
            r.host_name: r.error
            for r in await session.scalars(
                sa.select(HostRun).where(HostRun.rollout_id == rollout_id)
            )
        }
    return await rig.host_states(rollout_id), errors


async def test_a_host_without_rollback_material_is_not_patched_by_default(db: Database) -> None:
    rig = Rig(db)
    _without_material_on(rig, "dev-01")
    states, errors = await _run(rig)
    assert states["dev-01"] == "failed"
    assert "no rollback material for openssl=3.0.11-1" in (errors["dev-01"] or "")
    assert rig.executor.apply_count("dev-01") == 0
    assert states["dev-02"] == "healthy" and rig.executor.apply_count("dev-02") == 1


async def test_rollback_none_patches_a_host_without_material_and_audits_it(db: Database) -> None:
    rig = Rig(db)
    _without_material_on(rig, "dev-01")
    states, _ = await _run(rig, rollback="none")
    assert states == {"dev-01": "healthy", "dev-02": "healthy"}
    assert rig.executor.apply_count("dev-01") == 1
    async with read_only(db) as session:
        bodies = (
            await session.scalars(sa.select(Event.body).where(Event.kind == "host.apply.intent"))
        ).all()
    flagged = [b for b in bodies if "rollback_material_missing" in b]
    assert len(flagged) == 1 and "dev-01" in flagged[0] and "openssl=3.0.11-1" in flagged[0]


# --- the SSH executor's side: what it reports as missing --------------------------------


def _executor(tmp_path: Path) -> SshExecutor:
    return SshExecutor(SshOptions(known_hosts=tmp_path / "none", concurrency=1))


def test_the_executor_lists_versions_whose_packages_could_not_be_kept(tmp_path: Path) -> None:
    ex = _executor(tmp_path)
    seen: list[str] = []

    def checked(host: Any, conn: Any, command: Any, what: str) -> CommandOutput:
        seen.append(command.shell())
        return CommandOutput(
            3,
            "SECURED demo-app 1.0 /var/lib/patchgate/rollback/demo-app_1.0.deb\n"
            "MISSING libdemo 2:1.4-1\n",
            "",
        )

    ex._checked = checked  # type: ignore[method-assign]
    host = InventoryHost(name="h1")
    installed = {"demo-app": "1.0", "libdemo": "2:1.4-1", "new-pkg": None}
    try:
        missing = ex._secure_material(host, None, driver_for("apt"), installed)
    finally:
        ex.close()
    assert missing == ["libdemo=2:1.4-1"]
    assert len(seen) == 1 and "new-pkg" not in seen[0]  # nothing to keep for a new package


def test_a_failed_securing_command_counts_every_version_as_missing(tmp_path: Path) -> None:
    ex = _executor(tmp_path)

    def checked(host: Any, conn: Any, command: Any, what: str) -> CommandOutput:
        raise CommandFailed("h1", "securing rollback material exited 2", exit_code=2)

    ex._checked = checked  # type: ignore[method-assign]
    try:
        missing = ex._secure_material(
            InventoryHost(name="h1"),
            None,
            driver_for("apt"),
            {"demo-app": "1.0"},
        )
        nothing = ex._secure_material(
            InventoryHost(name="h1"),
            None,
            driver_for("apt"),
            {"new": None},
        )
    finally:
        ex.close()
    assert missing == ["demo-app=1.0"]
    assert nothing == []


def test_the_apt_material_directory_and_files_are_readable_by_apts_sandbox_user() -> None:
    script = driver_for("apt").secure_rollback_material({"demo-app": "1.0"}, material_dir="/x")
    text = " ".join(script.argv)
    assert "umask 077" not in text
    assert 'chmod 0755 -- "$dir"' in text and 'chmod 0644 -- "$out"' in text
