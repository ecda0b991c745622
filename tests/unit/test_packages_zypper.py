"""The zypper driver on captured SLES 15 SP6 XML outputs, and its exit-code conventions."""

from __future__ import annotations

from pathlib import Path

import pytest

from integrations.packages.base import CommandOutput
from integrations.packages.zypper import ZypperDriver
from workflows.errors import CommandFailed

FIXTURES = Path(__file__).parents[1] / "fixtures" / "packages"
zypper = ZypperDriver()


def fixture(name: str, exit_code: int = 0) -> CommandOutput:
    return CommandOutput(exit_code, (FIXTURES / name).read_text(), "")


def test_list_updates_xml_gives_old_and_new_editions_and_the_repository() -> None:
    parsed = zypper.parse_upgradable(fixture("zypper-list-updates-sles15.xml"))
    by_name = {p.name: p for p in parsed.value}
    assert by_name["openssl-3"].current == "3.1.4-150600.5.10.1"
    assert by_name["openssl-3"].candidate == "3.1.4-150600.5.15.1"
    assert by_name["timezone"].source.endswith("SLE-Module-Basesystem15-SP6-Updates")  # type: ignore[union-attr]
    assert any("appears to be outdated" in note for note in parsed.notes)


def test_security_patches_carry_severity_and_cves() -> None:
    parsed = zypper.parse_security(fixture("zypper-list-patches-security-sles15.xml"))
    ssl = parsed.value["openssl-3"]
    assert ssl.severity == "important" and ssl.cves == ("CVE-2024-2511",)
    assert ssl.advisories == ("SUSE-SLE-Module-Basesystem-15-SP6-2024-1234",)
    kernel = parsed.value["SUSE-SLE-Module-Basesystem-15-SP6-2024-1300"]
    assert kernel.severity == "critical" and "CVE-2024-26642" in kernel.cves


@pytest.mark.parametrize(("code", "outcome"), [(0, "ok"), (100, "ok"), (101, "ok"), (102, "ok"),
                         (103, "ok"), (106, "ok"), (7, "retry"), (104, "failed"),
                         (105, "failed"), (107, "failed"), (1, "failed")])  # fmt: skip
def test_exit_codes_follow_zyppers_conventions(code: int, outcome: str) -> None:
    assert (
        zypper.install_exact({"openssl-3": "3.1.4-150600.5.15.1"}).outcome(CommandOutput(code, ""))
        == outcome
    )


def test_a_failed_listing_is_an_error() -> None:
    with pytest.raises(CommandFailed):
        zypper.parse_upgradable(CommandOutput(104, ""))


def test_simulation_reads_the_install_summary() -> None:
    xml = (
        "<?xml version='1.0'?><stream><install-summary>"
        '<to-upgrade><solvable type="package" name="openssl-3" edition="3.1.4-150600.5.15.1"'
        ' arch="x86_64" edition-old="3.1.4-150600.5.10.1"/></to-upgrade>'
        '<to-install><solvable type="package" name="libnew1" edition="1.0-1" arch="x86_64"/>'
        '</to-install><to-remove><solvable type="package" name="old" edition="0.9-1"'
        ' arch="x86_64"/></to-remove></install-summary></stream>'
    )
    sim = zypper.parse_simulation(CommandOutput(0, xml)).value
    assert dict(sim.installs) == {"openssl-3": "3.1.4-150600.5.15.1", "libnew1": "1.0-1"}
    assert list(sim.removes) == ["old"]


def test_needs_rebooting_and_oldpackage_rollback() -> None:
    assert zypper.parse_reboot_required(fixture("zypper-needs-rebooting.txt", 102)) is True
    cmd = zypper.rollback({"openssl-3": "3.1.4-150600.5.10.1", "libnew1": None},
                          material_dir="/var/lib/patchgate/rollback/op1")  # fmt: skip
    assert "--oldpackage" in cmd.argv[2]
    assert cmd.argv[-2:] == ("libnew1-", "openssl-3=3.1.4-150600.5.10.1")


# --- plain tables (no --xmlout stream) ---------------------------------------------------


def test_list_updates_table_gives_the_same_updates_as_the_xml() -> None:
    parsed = zypper.parse_upgradable(fixture("zypper-list-updates-sles15.txt", 100))
    got = {p.name: (p.current, p.candidate, p.source) for p in parsed.value}
    assert got["openssl-3"] == (
        "3.1.4-150600.5.10.1",
        "3.1.4-150600.5.15.1",
        "SLE-Module-Basesystem15-SP6-Updates",
    )
    assert set(got) == {"libopenssl3", "openssl-3", "timezone"}
    assert parsed.unparsed == [] and parsed.notes == []


def test_list_patches_table_keys_security_patches_by_the_package_they_name() -> None:
    parsed = zypper.parse_security(fixture("zypper-list-patches-security-sles15.txt", 101))
    assert parsed.value["openssl-3"].advisories == ("SUSE-SLE-Module-Basesystem-15-SP6-2024-1234",)
    assert parsed.value["openssl-3"].severity == "important"
    kernel = parsed.value["SUSE-SLE-Module-Basesystem-15-SP6-2024-1300"]
    assert kernel.severity == "critical"
    assert parsed.unparsed == []


def test_a_localised_table_is_reported_not_guessed_and_zypper_runs_with_lc_all_c() -> None:
    parsed = zypper.parse_upgradable(fixture("zypper-list-updates-sles15-de.txt", 100))
    assert parsed.value == []
    assert any("localised" in note and "LC_ALL=C" in note for note in parsed.notes)
    assert any("openssl-3" in line for line in parsed.unparsed)  # reported, never dropped
    for command in (zypper.list_upgradable(), zypper.security_updates()):
        assert command is not None
        argv = command.full_argv()
        assert "LC_ALL=C" in argv and argv.index("LC_ALL=C") < argv.index("zypper")
