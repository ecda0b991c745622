"""The dnf/yum driver on captured RHEL 9 / Fedora 40 outputs."""

from __future__ import annotations

from pathlib import Path

import pytest

from integrations.packages import driver_for
from integrations.packages.base import CommandOutput
from integrations.packages.dnf import INSTALL_SCRIPT_ARGS, DnfDriver
from workflows.errors import CommandFailed, InputError

FIXTURES = Path(__file__).parents[1] / "fixtures" / "packages"
dnf = DnfDriver()


def fixture(name: str, exit_code: int = 0) -> CommandOutput:
    return CommandOutput(exit_code, (FIXTURES / name).read_text(), "")


def test_check_update_exit_100_lists_updates_with_wrapped_names_and_multilib() -> None:
    parsed = dnf.parse_upgradable(fixture("dnf-check-update-el9.txt", 100))
    by_name = {p.name: p for p in parsed.value}
    assert by_name["bind-libs"].candidate == "32:9.16.23-14.el9_3.4"
    assert by_name["glibc"].candidate == by_name["glibc.i686"].candidate == "2.34-83.el9_3.12"
    assert by_name["python3-setuptools-wheel-with-a-really-long-name"].candidate == (
        "53.0.0-12.el9_3.1"
    )
    # an obsoleting package is an update (yum update installs it), its victim a note
    assert by_name["grub2-tools"].candidate == "1:2.06-70.el9_3.2"
    assert (
        "obsoletes: grub2-tools.x86_64 1:2.06-70.el9_3.2 replaces grub2-tools.x86_64 1:2.06-61.el9"
        in parsed.notes
    )
    assert parsed.unparsed == []


def test_check_update_exit_1_is_an_error_not_an_empty_list() -> None:
    with pytest.raises(CommandFailed):
        dnf.parse_upgradable(CommandOutput(1, "", "Error: Failed to download metadata"))
    assert dnf.parse_upgradable(CommandOutput(0, "")).value == []


def test_updateinfo_gives_advisory_ids_severity_and_cves_per_package() -> None:
    sec = dnf.parse_security(fixture("dnf-updateinfo-security-el9.txt")).value
    assert sec["bind-libs"].advisories == ("RHSA-2024:1248",)
    assert sec["bind-libs"].cves == ("CVE-2023-4408", "CVE-2023-50387")
    assert sec["bind-libs"].version == "32:9.16.23-14.el9_3.4"
    assert sec["glibc"].severity == "Moderate"


def test_dnf5_advisory_list_is_understood() -> None:
    parsed = dnf.parse_security(fixture("dnf5-advisory-security-f40.txt"))
    assert parsed.value["openssh-clients"].advisories == ("FEDORA-2024-7b8d2b1d5e",)
    assert parsed.value["kernel"].severity == "Important" and parsed.unparsed == []


def test_rpm_query_maps_absent_packages_to_none_and_keeps_epochs() -> None:
    parsed = dnf.parse_installed(
        fixture("rpm-installed.txt", 1), ["bash", "bind-libs", "glibc", "nosuch"]
    )
    assert parsed.value == {
        "bash": "5.1.8-6.el9_1",
        "bind-libs": "32:9.16.23-14.el9_3",
        "glibc": "2.34-83.el9_3.7",
        "nosuch": None,
    }


def test_assumeno_simulation_yields_installs_new_dependencies_and_removals() -> None:
    sim = dnf.parse_simulation(fixture("dnf-assumeno-install-el9.txt", 1)).value
    assert sim.installs["bind-libs"] == "32:9.16.23-14.el9_3.4"
    assert sim.installs["kernel-core"] == "5.14.0-362.24.1.el9_3"
    assert "python3-setuptools-wheel-with-a-really-long-name" in sim.installs
    assert list(sim.removes) == ["kernel-core"]


def test_a_simulation_error_is_a_failure() -> None:
    with pytest.raises(CommandFailed):
        dnf.parse_simulation(CommandOutput(1, "", "Error: Unable to find a match: nosuch"))


def test_needs_restarting_reports_the_reboot_and_why() -> None:
    status = dnf.parse_reboot(fixture("dnf-needs-restarting-required.txt", 1)).value
    assert status.required and status.packages == ("kernel", "systemd")
    ok = CommandOutput(0, "No core libraries or services have been updated since boot-up.\n"
                          "Reboot should not be necessary.\n")  # fmt: skip
    assert dnf.parse_reboot_required(ok) is False


def test_install_uses_exact_name_epoch_version_release() -> None:
    cmd = dnf.install_exact({"bind-libs": "32:9.16.23-14.el9_3.4"})
    assert cmd.argv[INSTALL_SCRIPT_ARGS:] == (
        "dnf", "-y", "install", "bind-libs-32:9.16.23-14.el9_3.4")  # fmt: skip
    assert cmd.outcome(CommandOutput(1, "", "Error: Failed to obtain the transaction lock")) == (
        "retry"
    )


def test_rollback_undoes_the_recorded_transaction_and_validates_its_id() -> None:
    cmd = dnf.rollback({"bind-libs": "32:9.16.23-14.el9_3"}, material_dir="/var/lib/pg/op1",
                       transaction="42")  # fmt: skip
    assert cmd.argv[4:] == (
        "/var/lib/pg/op1", "-", "dnf", "42", "bind-libs=32:9.16.23-14.el9_3"
    )  # fmt: skip
    with pytest.raises(InputError):
        dnf.rollback({"a": "1"}, material_dir="/x", transaction="42; reboot")
    assert dnf.parse_transaction_id(CommandOutput(0, "ID | Command\n 42 | install x\n")) == "42"


def test_yum_is_the_same_driver_with_its_own_program() -> None:
    yum = driver_for("yum")
    assert yum.name == "yum" and yum.list_upgradable().argv[0] == "yum"
    assert yum.reboot_required().argv == ("needs-restarting", "-r")


def test_the_simulation_runs_as_root_since_dnf_refuses_install_assumeno_to_users() -> None:
    # Real dnf 4 (lab, tests/lab_tests/test_lab_dnf.py): "This command has to be run with
    # superuser privileges", exit 1, before resolving anything.
    command = dnf.simulate(["demo-app=1.1-1"])
    assert command.sudo
    assert command.shell().startswith("sudo -n -- ")


def run_install(tmp_path: Path, output: str, exit_code: int) -> tuple[int, str, str]:
    """Run install_exact's script with a fake dnf printing ``output``, exiting ``exit_code``."""
    import subprocess

    fake = tmp_path / "dnf"
    fake.write_text(f"#!/bin/sh\ncat <<'EOF'\n{output}EOF\nexit {exit_code}\n")
    fake.chmod(0o755)
    argv = list(dnf.install_exact({"demo-app": "1.3-1"}).argv)
    argv[INSTALL_SCRIPT_ARGS] = str(fake)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    return done.returncode, done.stdout, done.stderr


def test_a_failed_scriptlet_fails_the_install_although_dnf_exits_0(tmp_path: Path) -> None:
    # what dnf 4.14 prints (lab, tests/lab_tests/test_lab_dnf.py) for a %post exiting 1
    failed = (
        "  Running scriptlet: demo-app-1.3-1.noarch\ndemo-app: configuration failed\n"
        "warning: %post(demo-app-1.3-1.noarch) scriptlet failed, exit status 1\n\n"
        "Error in POSTIN scriptlet in rpm package demo-app\nComplete!\n"
    )
    code, out, err = run_install(tmp_path, failed, 0)
    assert (code, out) == (1, failed)
    assert "scriptlet failed" in err
    assert run_install(tmp_path, "Upgraded:\n  demo-app-1.1-1.noarch\nComplete!\n", 0)[0] == 0
    assert run_install(tmp_path, "Error: Nothing to do\n", 1)[0] == 1


def test_dnf4_metadata_download_lines_are_not_left_unparsed() -> None:
    # dnf 4.14 (lab) prints one per repository whose metadata it fetched
    out = (
        "PatchGate lab                                   385 kB/s | 1.7 kB     00:00    \n"
        "\ndemo-app.noarch                              1.1-1                           lab\n"
    )
    parsed = dnf.parse_upgradable(CommandOutput(100, out, ""))
    assert [(p.name, p.candidate) for p in parsed.value] == [("demo-app", "1.1-1")]
    assert parsed.unparsed == []
