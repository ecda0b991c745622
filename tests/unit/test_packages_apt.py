"""The apt driver: commands it builds and what it understands from real apt output."""

from __future__ import annotations

from pathlib import Path

import pytest

from integrations.packages import driver_for
from integrations.packages.apt import AptDriver
from integrations.packages.base import CommandOutput
from workflows.errors import CommandFailed, InputError

FIXTURES = Path(__file__).parents[1] / "fixtures" / "packages"


def fixture(name: str, exit_code: int = 0) -> CommandOutput:
    return CommandOutput(exit_code, (FIXTURES / name).read_text(), "")


apt = AptDriver()


def test_driver_for_apt_is_the_apt_driver() -> None:
    assert driver_for("apt").name == "apt"


def test_driver_for_an_unknown_manager_is_an_input_error() -> None:
    with pytest.raises(InputError, match="unknown package manager 'pacman'"):
        driver_for("pacman")


def test_a_real_bookworm_simulation_yields_every_inst_line_with_security_from_the_origin() -> None:
    parsed = apt.parse_upgradable(fixture("apt-dist-upgrade-bookworm.txt"))
    by_name = {p.name: p for p in parsed.value}
    assert len(by_name) == 121
    assert parsed.unparsed == []
    pam = by_name["libpam-modules-bin"]
    assert (pam.current, pam.candidate) == ("1.5.2-6+deb12u1", "1.5.2-6+deb12u3")
    assert pam.security is True
    assert pam.source == "Debian-Security:12/oldstable-security"
    assert by_name["base-files"].security is False


def test_epochs_multiarch_several_origins_kept_back_and_phasing_are_understood() -> None:
    parsed = apt.parse_upgradable(fixture("apt-dist-upgrade-jammy-edge.txt"))
    by_name = {p.name: p for p in parsed.value}
    assert by_name["openssh-client"].current == "1:8.9p1-3ubuntu0.7"
    assert by_name["openssh-client"].candidate == "1:8.9p1-3ubuntu0.10"
    assert by_name["openssh-client"].security is True
    assert by_name["libc6:i386"].candidate == "2.35-0ubuntu3.7"
    assert by_name["libc6"].source == "Ubuntu:22.04/jammy-updates, Ubuntu:22.04/jammy-security"
    assert by_name["tzdata"].security is False
    assert by_name["linux-image-5.15.0-107-generic"].current is None  # a new dependency
    assert "kept back: docker-ce" in parsed.notes
    assert "deferred (phasing): gnome-shell" in parsed.notes
    assert "gnome-shell" not in by_name
    assert parsed.unparsed == ["this line is not something apt prints"]


def test_apt_list_upgradable_output_is_understood_too() -> None:
    parsed = apt.parse_upgradable(fixture("apt-list-upgradable-jammy.txt"))
    by_name = {p.name: p for p in parsed.value}
    assert set(by_name) == {"libc6", "libc6:i386", "openssh-client", "tzdata", "gnome-shell"}
    assert by_name["libc6"].security and by_name["libc6"].source == "jammy-updates,jammy-security"
    assert by_name["openssh-client"].current == "1:8.9p1-3ubuntu0.7"
    assert not by_name["tzdata"].security
    assert parsed.unparsed == []


def test_security_lists_only_updates_from_a_security_origin() -> None:
    parsed = apt.parse_security(fixture("apt-dist-upgrade-jammy-edge.txt"))
    assert "openssh-client" in parsed.value and "vim-tiny" not in parsed.value
    assert parsed.value["openssh-client"].version == "1:8.9p1-3ubuntu0.10"
    assert apt.security_updates() is None


def test_installed_versions_map_absent_and_removed_packages_to_none() -> None:
    names = ["bash", "libc6", "openssh-server", "demo-app", "nosuch"]
    out = fixture("apt-installed.txt", exit_code=1)
    out = CommandOutput(1, out.stdout, "dpkg-query: no packages found matching nosuch\n")
    parsed = apt.parse_installed(out, names)
    assert parsed.value == {
        "bash": "5.2.15-2+b8",
        "libc6": "2.36-9+deb12u14",
        "openssh-server": None,
        "demo-app": "1.3",
        "nosuch": None,
    }
    assert parsed.unparsed == []


def test_a_failed_query_is_not_parsed_as_all_absent() -> None:
    with pytest.raises(CommandFailed):
        apt.parse_installed(CommandOutput(2, "", "dpkg-query: error"), ["bash"])


def test_simulation_collects_upgrades_new_dependencies_and_removals() -> None:
    out = CommandOutput(
        0,
        "Inst demo-tool [1.0] (2.0 lab:1/stable [amd64])\n"
        "Inst demo-lib (2.0 lab:1/stable [amd64])\n"
        "Remv old-lib [0.9]\n"
        "Conf demo-lib (2.0 lab:1/stable [amd64])\n",
    )
    sim = apt.parse_simulation(out).value
    assert dict(sim.installs) == {"demo-tool": "2.0", "demo-lib": "2.0"}
    assert list(sim.removes) == ["old-lib"]


def test_install_pins_exact_versions_noninteractively_with_a_lock_timeout() -> None:
    cmd = apt.install_exact({"openssh-client": "1:8.9p1-3ubuntu0.10", "demo-app": "1.1"})
    assert cmd.argv[-2:] == ("demo-app=1.1", "openssh-client=1:8.9p1-3ubuntu0.10")
    assert "DPkg::Lock::Timeout=120" in cmd.argv and "Dpkg::Options::=--force-confold" in cmd.argv
    assert cmd.shell().startswith("sudo -n -- env LC_ALL=C DEBIAN_FRONTEND=noninteractive apt-get")


def test_lock_contention_means_retry_and_other_failures_mean_failed() -> None:
    cmd = apt.install_exact({"demo-app": "1.1"})
    locked = CommandOutput(100, "", "E: Could not get lock /var/lib/dpkg/lock-frontend.")
    assert cmd.outcome(locked) == "retry"
    assert cmd.outcome(CommandOutput(100, "", "E: Sub-process /usr/bin/dpkg returned")) == "failed"
    assert cmd.outcome(CommandOutput(0, "", "")) == "ok"


@pytest.mark.parametrize(
    "patchset",
    [{"demo-app": "1.1; rm -rf /"}, {"Demo": "1.0"}, {"-o": "1"}, {"demo": "$(id)"}, {}],
)
def test_a_bad_package_name_or_version_is_refused_before_any_command(
    patchset: dict[str, str],
) -> None:
    with pytest.raises(InputError):
        apt.install_exact(patchset)


def test_reboot_required_reads_the_flag_file_and_its_packages() -> None:
    status = apt.parse_reboot(fixture("apt-reboot-required.txt")).value
    assert status.required and status.packages == ("linux-image-6.1.0-18-amd64", "libc6")
    assert apt.parse_reboot_required(CommandOutput(0, "", "")) is False


def test_preflight_reports_audit_half_configured_low_space_and_lock_holders() -> None:
    df = (
        "== /\nFilesystem 1024-blocks Used Available Capacity Mounted on\n"
        "/dev/sda1 10000000 9000000 1000000 90% /\n"
        "== /var\nFilesystem 1024-blocks Used Available Capacity Mounted on\n"
        "/dev/sda1 10000000 9000000 1000000 90% /\n"
        "== /boot\nFilesystem 1024-blocks Used Available Capacity Mounted on\n"
        "/dev/sda2 500000 460000 40000 92% /boot\n"
    )
    outputs = [
        CommandOutput(1, "The following packages are only half configured...\n demo-app\n"),
        CommandOutput(0, "ii \tbash\niF \tdemo-app\nrc \told\n"),
        CommandOutput(0, df),
        CommandOutput(0, "LOCKED /var/lib/dpkg/lock-frontend 4242\n"),
    ]
    problems = apt.parse_preflight(outputs)
    assert problems == [
        "package database: dpkg --audit reports: "
        "The following packages are only half configured...",
        "package demo-app is in state iF (not configured)",
        "free space: /boot has 39 MiB, needs 100 MiB",
        "lock: /var/lib/dpkg/lock-frontend is held by pid 4242",
    ]


def test_a_healthy_host_passes_preflight() -> None:
    df = "== /\nFilesystem 1024-blocks Used Available Capacity Mounted on\nx 9 1 9000000 1% /\n"
    outputs = [CommandOutput(0, ""), CommandOutput(0, "ii \tbash\n"), CommandOutput(0, df)]
    assert apt.parse_preflight([*outputs, CommandOutput(0, "NOTOOL\n")]) == []


# --- the host-side scripts, run by a real sh with fake apt-get/dpkg on PATH ---------------

FAKE_APT_GET = """#!/bin/sh
echo "$@" >> "$LOG"
if [ "$1" = download ]; then
  for spec; do case "$spec" in *=*) n=${spec%%=*}; v=${spec#*=}
    [ "$n" = fromrepo ] && echo deb > "${n}_${v}_amd64.deb";; esac; done
  exit 0
fi
exit 0
"""


def run_local(cmd_argv: tuple[str, ...], tmp_path: Path) -> CommandOutput:
    import os
    import subprocess

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "apt-get"
    fake.write_text(FAKE_APT_GET)
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "LOG": str(tmp_path / "log")}
    done = subprocess.run(cmd_argv, capture_output=True, text=True, env=env, check=False)
    return CommandOutput(done.returncode, done.stdout, done.stderr)


def test_rollback_material_comes_from_the_cache_else_the_repository_else_is_missing(
    tmp_path: Path,
) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "incache_1%3a2.0-1_amd64.deb").write_text("deb")
    driver = AptDriver(apt_cache=str(cache))
    material = tmp_path / "material" / "op-1"
    cmd = driver.secure_rollback_material(
        {"incache": "1:2.0-1", "fromrepo": "3.0", "gone": "1.0", "new-dep": None},
        material_dir=str(material),
    )
    out = run_local(cmd.argv, tmp_path)
    assert cmd.outcome(out) == "ok" and out.exit_code == 3  # 3: something is missing
    secured = driver.parse_rollback_material(out).value
    assert secured == {
        "fromrepo": f"{material}/fromrepo_3.0.deb",
        "gone": None,
        "incache": f"{material}/incache_1%3a2.0-1.deb",
    }
    assert (material / "incache_1%3a2.0-1.deb").read_text() == "deb"
    assert (material / "fromrepo_3.0.deb").exists()


def test_rollback_installs_kept_debs_downgrading_and_removes_what_was_absent(
    tmp_path: Path,
) -> None:
    material = tmp_path / "m"
    material.mkdir()
    (material / "demo-app_1.1.deb").write_text("deb")
    cmd = apt.rollback(
        {"demo-app": "1.1", "demo-lib": None, "other": "2:1.0"}, material_dir=str(material)
    )
    out = run_local(cmd.argv, tmp_path)
    assert out.exit_code == 0, out.stderr
    logged = (tmp_path / "log").read_text().split()
    assert "--allow-downgrades" in logged and logged[logged.index("install") :] == [
        "install",
        f"{material}/demo-app_1.1.deb",
        "demo-lib-",
        "other=2:1.0",
    ]
    assert "no kept .deb for other=2:1.0" in out.stderr
