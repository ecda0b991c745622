"""The Ansible backend's pure parts: per-host outcomes from captured runner events
(tests/fixtures/ansible_events/, recorded from a real lab run), options, capabilities,
the run environment and retention."""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from integrations.backends.ansible import events as ev
from integrations.backends.ansible.options import capabilities, check_options
from integrations.backends.ansible.runs import (
    META,
    generated_inventory,
    job_id_for,
    prune_artifacts,
    run_environment,
)
from workflows.ports import InventoryHost

CAPTURED = Path(__file__).resolve().parents[1] / "fixtures" / "ansible_events" / "apply_mixed.json"
HOSTS = ["lab-ans-1", "lab-ans-2", "lab-gone"]


def captured() -> list[dict[str, Any]]:
    return json.loads(CAPTURED.read_text())


def test_captured_events_give_applied_failed_and_unreachable_hosts_with_versions() -> None:
    out = ev.outcomes(captured(), HOSTS, finished=True)
    ok, failed, gone = (out[h] for h in HOSTS)
    assert (ok.status, dict(ok.before), dict(ok.after)) == (
        "applied", {"demo-app": "1.0"}, {"demo-app": "1.1"}
    )  # fmt: skip
    assert failed.status == "failed"
    assert failed.failed_task == "Install the pinned versions with apt"
    assert "1.3" in failed.output
    assert gone.status == "unreachable" and "Connection refused" in gone.output


def test_a_run_cut_before_its_stats_reports_hosts_without_a_result_as_interrupted() -> None:
    events = [e for e in captured() if e["event"] != "playbook_on_stats"]
    cut = events[: len(events) // 3]
    out = ev.outcomes(cut, HOSTS, finished=False)
    assert out["lab-gone"].status == "unreachable"  # its own result came early
    assert out["lab-ans-1"].status == "failed"
    assert out["lab-ans-1"].output == ev.INTERRUPTED


def test_a_host_the_run_never_touched_is_skipped_and_says_why() -> None:
    out = ev.outcomes(captured(), [*HOSTS, "lab-unknown"], finished=True)
    assert (out["lab-unknown"].status, out["lab-unknown"].output) == ("skipped", ev.NOT_RUN)


def test_a_failure_with_ignore_errors_does_not_fail_the_host() -> None:
    events = [
        {"event": "runner_on_failed",
         "event_data": {"host": "h", "task": "t", "ignore_errors": True, "res": {"msg": "x"}}},
        {"event": "playbook_on_stats", "event_data": {"ok": {"h": 2}, "failures": {}}},
    ]  # fmt: skip
    assert ev.outcomes(events, ["h"], finished=True)["h"].status == "applied"


def test_a_run_that_ended_without_stats_fails_every_host_with_the_runs_output() -> None:
    said = "ERROR! the playbook could not be parsed"
    out = ev.outcomes([], ["h"], finished=True, run_output=said)
    assert out["h"].status == "failed" and "could not be parsed" in out["h"].output


def test_assessment_rows_and_facts_are_read_and_missing_data_is_an_error() -> None:
    events = [
        {"event": "runner_on_ok", "event_data": {"host": "a", "res": {"patchgate_assessment": {
            "facts": {"os_id": "Debian", "os_version": "12", "arch": "x86_64", "kernel": "6.1",
                      "package_manager": "apt", "boot_id": "b", "uptime_seconds": "12.5",
                      "reboot_required": False},
            "upgradable": [{"name": "demo-app", "current": "1.0", "candidate": "1.1",
                            "security": True, "source": "lab-security"}]}}}},
        {"event": "runner_on_unreachable", "event_data": {"host": "b", "res": {"msg": "refused"}}},
        {"event": "runner_on_ok", "event_data": {"host": "c", "res": {}}},
        {"event": "playbook_on_stats", "event_data": {"ok": {"a": 3, "c": 1}, "dark": {"b": 1}}},
    ]  # fmt: skip
    a, b, c = ev.assessments(events, ["a", "b", "c"], finished=True)
    assert a.facts is not None and (a.facts.os_id, a.facts.uptime_seconds) == ("debian", 12.5)
    assert [(p.name, p.current, p.candidate, p.security) for p in a.upgradable] == [
        ("demo-app", "1.0", "1.1", True)
    ]
    assert (b.reachable, b.error) == (False, "refused")
    assert c.reachable and c.error == ev.NOT_RUN


def test_options_are_checked_names_only_and_unknown_keys_refused(tmp_path: Path) -> None:
    (tmp_path / "patch.yml").write_text("- hosts: all\n")
    (tmp_path / "sub").mkdir()
    good = {"project_dir": str(tmp_path), "playbook": "patch.yml"}
    assert check_options(good) == []
    problems = check_options(
        {**good, "rollback_playbook": "../etc/x.yml", "reboot_playbook": "sub",
         "assess_playbook": "missing.yml", "colour": "red", "playbook_reboots": "yes"}
    )  # fmt: skip
    text = "\n".join(problems)
    assert "unknown option 'colour'" in text
    assert "rollback_playbook must be a file name" in text
    assert "reboot_playbook must be a file name" in text
    assert "assess_playbook 'missing.yml' is not a file" in text
    assert "playbook_reboots must be true or false" in text
    assert check_options({}) and "project_dir is required" in check_options({})[0]


def test_capabilities_follow_the_configured_playbooks() -> None:
    assert capabilities({"playbook": "p.yml"}) == capabilities({})
    base = capabilities({"playbook": "p.yml"})
    assert (base.rollback, base.reboot, base.assess, base.inventory, base.health) == (
        False, False, False, False, True
    )  # fmt: skip
    full = capabilities(
        {"playbook": "p.yml", "rollback_playbook": "r.yml", "assess_playbook": "a.yml",
         "inventory": "hosts.yml"}
    )  # fmt: skip
    assert (full.rollback, full.reboot, full.assess, full.inventory, full.per_host) == (
        True, False, True, True, False
    )  # fmt: skip
    assert capabilities({"playbook_reboots": True}).reboot
    assert capabilities({"reboot_playbook": "b.yml"}).reboot


def test_the_runs_environment_drops_patchgate_settings_and_secret_looking_names() -> None:
    env = run_environment(
        {"PATH": "/usr/bin", "PATCHGATE_SLACK_BOT_TOKEN": "xoxb", "AWS_SECRET_ACCESS_KEY": "s",
         "HOME": "/root", "GITHUB_TOKEN": "t"},
        {"ANSIBLE_HOST_KEY_CHECKING": "True"},
    )  # fmt: skip
    assert "PATCHGATE_SLACK_BOT_TOKEN" not in env and "GITHUB_TOKEN" not in env
    assert "AWS_SECRET_ACCESS_KEY" not in env
    assert env["HOME"] == "/root" and env["ANSIBLE_HOST_KEY_CHECKING"] == "True"


def test_job_ids_are_safe_directory_names_distinct_per_key() -> None:
    a, b = job_id_for("rollout-1/ring a/../1"), job_id_for("rollout-1/ring a/../2")
    assert a != b and "/" not in a and " " not in a


def test_generated_inventory_carries_connection_values_and_no_secret() -> None:
    inv = generated_inventory(
        [InventoryHost(name="web1", address="10.0.0.1", port=2222, user="ops",
                       private_key_file="/k", become=False)]
    )  # fmt: skip
    assert inv == {"all": {"hosts": {"web1": {
        "ansible_host": "10.0.0.1", "ansible_port": 2222, "ansible_user": "ops",
        "ansible_ssh_private_key_file": "/k", "ansible_become": False}}}}  # fmt: skip


def test_prune_removes_old_job_directories_and_keeps_recent_and_foreign_ones(
    tmp_path: Path,
) -> None:
    now = time.time()
    for name, age in (("old", 40 * 86400), ("new", 3600)):
        folder = tmp_path / name
        (folder / "artifacts" / name).mkdir(parents=True)
        (folder / META).write_text(json.dumps({"key": name, "owner": {"pid": 0}}))
        (folder / "artifacts" / name / "status").write_text("successful")
        for path in folder.rglob("*"):
            os.utime(path, (now - age, now - age))
    (tmp_path / "not-ours").mkdir()
    removed = prune_artifacts(tmp_path, older_than=30 * 86400, now=now)
    assert removed == ["old"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new", "not-ours"]


async def test_submit_with_bad_options_is_a_plan_error_and_starts_nothing(tmp_path: Path) -> None:
    from integrations.backends.ansible import AnsibleBackend, AnsibleConfig
    from workflows.backends import BatchWork
    from workflows.errors import PlanError

    backend = AnsibleBackend(AnsibleConfig(artifacts_dir=tmp_path / "a", known_hosts=tmp_path))
    work = BatchWork(
        key="k1",
        action="rollback",
        rollout_id=1,
        ring="r",
        batch=1,
        hosts=[InventoryHost(name="h")],
        versions={"h": {"p": "1"}},
        options={"project_dir": str(tmp_path), "playbook": "../patch.yml"},
    )
    try:
        with pytest.raises(PlanError, match="playbook must be a file name"):
            await backend.submit(work)
        (tmp_path / "patch.yml").write_text("- hosts: all\n")
        ok_options = {"project_dir": str(tmp_path), "playbook": "patch.yml"}
        with pytest.raises(PlanError, match="no playbook configured for 'rollback'"):
            await backend.submit(dataclasses.replace(work, options=ok_options))
        assert await backend.find("k1", ok_options) is None
    finally:
        backend.close()
    assert not (tmp_path / "a").exists()
