"""Host-side advisories (dnf4/yum updateinfo, dnf5 advisory JSON and tables, zypper
patches): the commands built, and the parsers on outputs in the tools' formats
(tests/fixtures/hostdata; no RHEL/Fedora/SUSE lab hosts: see its README), then through
the assessment's risk score."""

from __future__ import annotations

import datetime as dt
import shlex
import subprocess
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest

from integrations.advisories.hostdata import (
    dnf_command,
    parse_dnf,
    parse_zypper_patch_info,
    parse_zypper_patches,
    read_host_advisories,
    zypper_patch_info_command,
    zypper_patches_command,
)
from integrations.advisories.records import records_from_host
from integrations.packages.base import Command, CommandOutput
from integrations.packages.versions import compare
from workflows import assessment
from workflows.errors import CommandFailed, InputError
from workflows.ports import HostAdvisory, InventoryHost, UpgradablePackage

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "hostdata"


def output(name: str, exit_code: int = 0) -> CommandOutput:
    return CommandOutput(exit_code, (FIXTURES / name).read_text())


def by_id(advisories: list[HostAdvisory]) -> dict[str, HostAdvisory]:
    return {a.id: a for a in advisories}


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, second, tzinfo=dt.UTC)


# --- dnf4 / yum ------------------------------------------------------------------------------


def test_dnf4_list_and_info_give_each_advisory_its_packages_cves_severity_and_date() -> None:
    parsed = parse_dnf(output("dnf4-el9.txt"))
    assert parsed.unparsed == []
    found = by_id(parsed.value)
    assert sorted(found) == ["RHSA-2024:0310", "RHSA-2024:1248", "RHSA-2024:1250", "RHSA-2024:2000"]
    openssl = found["RHSA-2024:0310"]
    assert openssl.packages == {
        "openssl": "1:3.0.7-25.el9_3",
        "openssl-libs": "1:3.0.7-25.el9_3",
        "openssl-libs.i686": "1:3.0.7-25.el9_3",
    }
    assert openssl.cves == ("CVE-2023-3446", "CVE-2023-3817", "CVE-2023-5678")
    assert openssl.severity == "high" and openssl.published == utc(2024, 1, 22, 10, 12, 3)
    # no CVEs field: the CVE ids in the Bugs titles count
    assert found["RHSA-2024:1248"].cves == ("CVE-2023-4408", "CVE-2023-50387")
    assert found["RHSA-2024:1248"].packages == {"bind-libs": "32:9.16.23-14.el9_3.4"}
    assert found["RHSA-2024:1250"].severity == "medium"
    assert found["RHSA-2024:2000"].severity == "low"
    assert found["RHSA-2024:2000"].packages == {"vim-minimal": "2:8.2.2637-20.el9_1"}


def test_yum_el7_info_with_spaced_labels_and_issued_dates_parses_too() -> None:
    parsed = parse_dnf(output("yum-el7.txt"))
    assert parsed.unparsed == []
    (advisory,) = parsed.value
    assert advisory.id == "RHSA-2019:0483" and advisory.severity == "medium"
    assert advisory.cves == ("CVE-2018-5407",)
    assert advisory.published == utc(2019, 3, 13, 11, 17, 46)
    assert advisory.packages == {
        "openssl": "1:1.0.2k-16.el7_6.1",
        "openssl-libs": "1:1.0.2k-16.el7_6.1",
    }


def test_unknown_lines_are_reported_not_dropped() -> None:
    text = (
        (FIXTURES / "dnf4-el9.txt")
        .read_text()
        .replace(
            "RHSA-2024:2000 Low/Sec.",
            "Error: Failed to download metadata for repo\nRHSA-2024:2000 Low/Sec.",
        )
    )
    parsed = parse_dnf(CommandOutput(0, text))
    assert parsed.unparsed == ["Error: Failed to download metadata for repo"]
    assert parse_dnf(CommandOutput(0, "something else\n")).unparsed == [
        "something else",
        "no advisory listing in the output",
    ]


def test_a_failed_listing_raises_rather_than_reading_as_no_advisories() -> None:
    with pytest.raises(CommandFailed):
        parse_dnf(CommandOutput(1, "@@patchgate:dnf4-list\n", "Error: cache empty"))


# --- dnf5 ---------------------------------------------------------------------------------------


def test_dnf5_json_joins_the_basic_and_cve_listings_with_unix_timestamps() -> None:
    parsed = parse_dnf(output("dnf5-json-f40.txt"))
    assert parsed.unparsed == []
    found = by_id(parsed.value)
    ssh = found["FEDORA-2024-7b8d2b1d5e"]
    assert ssh.packages == {"openssh": "9.6p1-1.fc40.4", "openssh-clients": "9.6p1-1.fc40.4"}
    assert ssh.cves == ("CVE-2023-48795",)  # the bugzilla reference is not a CVE
    assert ssh.severity == "medium"
    assert ssh.published == dt.datetime.fromtimestamp(1712715100, dt.UTC)
    kernel = found["FEDORA-2024-3b1ea2ab1c"]
    assert kernel.cves == ("CVE-2024-26642", "CVE-2024-26643") and kernel.severity == "high"
    less = found["FEDORA-2024-c0ffee0001"]
    assert less.severity is None and less.cves == ()  # "None" is no severity


def test_dnf5_before_5_3_gives_iso_dates_and_its_extended_severity_is_not_trusted() -> None:
    (kernel,) = parse_dnf(output("dnf5-json-f39-isodates.txt")).value
    assert kernel.published == utc(2024, 4, 12, 1, 42, 11)
    assert kernel.severity == "high"  # from the basic listing, not "security"
    assert kernel.cves == ("CVE-2024-26642",)


def test_dnf5_without_json_falls_back_to_its_tables_matched_by_package() -> None:
    parsed = parse_dnf(output("dnf5-table-f40.txt"))
    assert parsed.unparsed == []
    found = by_id(parsed.value)
    assert found["FEDORA-2024-3b1ea2ab1c"].cves == ("CVE-2024-26642",)
    assert found["FEDORA-2024-3b1ea2ab1c"].packages == {"kernel": "6.8.5-301.fc40"}
    assert found["FEDORA-2024-7b8d2b1d5e"].cves == ("CVE-2023-48795",)
    assert found["FEDORA-2024-7b8d2b1d5e"].published == utc(2024, 4, 10, 2, 11, 40)


def test_bad_dnf5_json_is_reported() -> None:
    parsed = parse_dnf(CommandOutput(0, '@@patchgate:dnf5-json\n[{"name": 1}, \n'))
    assert parsed.value == [] and parsed.unparsed[0].startswith("JSON does not parse")


# --- zypper -------------------------------------------------------------------------------------


def test_zypper_patches_give_severity_issue_date_and_cves() -> None:
    parsed = parse_zypper_patches(output("zypper-list-patches-sles15sp5.xml", 101))
    found = by_id(parsed.value)
    openssl = found["SUSE-SLE-Module-Basesystem-15-SP5-2023-4375"]
    assert openssl.cves == ("CVE-2023-5678",)  # the bugzilla issue is not a CVE
    assert openssl.severity == "medium"
    assert openssl.published == dt.datetime.fromtimestamp(1699350225, dt.UTC)
    assert openssl.packages == {}  # list-patches names none: info -t patch does
    assert found["SUSE-SLE-Module-Basesystem-15-SP5-2024-1103"].severity == "high"


def test_zypper_patch_info_conflicts_give_packages_and_fixed_versions() -> None:
    parsed = parse_zypper_patch_info(output("zypper-info-patch-sles15sp5.txt"))
    assert parsed.value == {
        "SUSE-SLE-Module-Basesystem-15-SP5-2023-4375": {
            "libopenssl-3-devel": "3.0.8-150500.5.17.1",
            "libopenssl3": "3.0.8-150500.5.17.1",
            "openssl-3": "3.0.8-150500.5.17.1",
            "openssl-3-doc": "3.0.8-150500.5.17.1",
        },
        "SUSE-SLE-Module-Basesystem-15-SP5-2024-1103": {
            "sudo": "1.9.12p1-150500.7.10.1",
            "sudo-plugin-python": "1.9.12p1-150500.7.10.1",
        },
    }


def test_the_older_zypper_info_layout_and_a_missing_patch_are_understood() -> None:
    parsed = parse_zypper_patch_info(output("zypper-info-patch-old-format.txt"))
    assert parsed.value == {
        "openSUSE-2014-123": {
            "curl": "7.32.0-2.14.1",
            "libcurl4": "7.32.0-2.14.1",
            "libcurl4-32bit": "7.32.0-2.14.1",
        }
    }
    assert parsed.notes == ["patch openSUSE-2099-1 not found"]


def test_a_single_conflict_on_the_label_line_is_understood() -> None:
    # zypper 1.14 (Debian's, the lab's zypper hosts) prints one conflict inline
    text = (
        "Information for patch LAB-2026:0001:\n------------------------------------\n"
        "Repository  : PatchGate lab\nName        : LAB-2026:0001\n"
        "Category    : security\nSeverity    : important\n"
        "Summary     : Security update for demo-app\n"
        "Provides    : patch:LAB-2026:0001 = 1\nConflicts   : demo-app < 1.1-1\n\n"
    )
    parsed = parse_zypper_patch_info(CommandOutput(0, text, ""))
    assert parsed.value == {"LAB-2026:0001": {"demo-app": "1.1-1"}}


def recorded_runner(
    outputs: dict[str, CommandOutput],
) -> tuple[list[Command], Callable[[Command, str], CommandOutput]]:
    ran: list[Command] = []

    def run(command: Command, what: str) -> CommandOutput:
        ran.append(command)
        return outputs[command.argv[3] if command.argv[0] == "zypper" else command.argv[0]]

    return ran, run


def test_reading_a_zypper_host_asks_for_the_patches_then_their_packages() -> None:
    ran, run = recorded_runner(
        {
            "--xmlout": output("zypper-list-patches-sles15sp5.xml", 100),
            "info": output("zypper-info-patch-sles15sp5.txt"),
        }
    )
    parsed = read_host_advisories("zypper", run)
    assert [c.argv[3:] for c in ran] == [
        ("--xmlout", "list-patches", "--category", "security"),
        (
            "info",
            "-t",
            "patch",
            "SUSE-SLE-Module-Basesystem-15-SP5-2023-4375",
            "SUSE-SLE-Module-Basesystem-15-SP5-2024-1103",
        ),
    ]
    sudo = by_id(parsed.value)["SUSE-SLE-Module-Basesystem-15-SP5-2024-1103"]
    assert sudo.packages["sudo"] == "1.9.12p1-150500.7.10.1"
    assert sudo.cves == ("CVE-2023-42465",) and sudo.severity == "high"
    assert parsed.notes == []


def test_apt_hosts_have_no_host_side_advisories_and_run_nothing() -> None:
    ran, run = recorded_runner({})
    assert read_host_advisories("apt", run).value == [] and ran == []


def test_bad_patch_names_and_programs_are_refused_before_any_command() -> None:
    with pytest.raises(InputError, match="not a valid patch name"):
        zypper_patch_info_command(["SUSE-1; rm -rf /"])
    with pytest.raises(InputError, match="not a valid patch name"):
        zypper_patch_info_command(["--from=evil"])
    with pytest.raises(InputError, match="unknown dnf-family program"):
        dnf_command("apt-get")


def test_the_commands_are_read_only_and_quoted() -> None:
    for command in (dnf_command("dnf"), dnf_command("yum"), zypper_patches_command()):
        assert not command.sudo
        assert command.shell().startswith("env LC_ALL=C ")
    assert zypper_patches_command().outcome(CommandOutput(101, "")) == "ok"
    assert zypper_patches_command().outcome(CommandOutput(7, "")) == "retry"


def test_the_dnf_script_runs_dnf4_listings_in_marked_sections(tmp_path: Path) -> None:
    """Run the real script with a stand-in ``dnf`` on PATH (no dnf5) and check what it
    asked and printed; a failing listing makes the script fail."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "calls"
    fake = bindir / "dnf"
    fake.write_text(f'#!/bin/sh\necho "$*" >> {shlex.quote(str(log))}\necho "out $3"\n')
    fake.chmod(0o755)
    argv = dnf_command("dnf").argv
    env = {"PATH": f"{bindir}:/usr/bin:/bin", "LC_ALL": "C"}
    result = subprocess.run(list(argv), capture_output=True, text=True, env=env, check=False)
    assert result.returncode == 0
    assert result.stdout.splitlines() == [
        "@@patchgate:dnf4-list",
        "out list",
        "@@patchgate:dnf4-info",
        "out info",
    ]
    assert log.read_text().splitlines() == [
        "-q updateinfo list --security",
        "-q updateinfo info --security",
    ]
    fake.write_text("#!/bin/sh\nexit 1\n")
    failed = subprocess.run(list(argv), capture_output=True, text=True, env=env, check=False)
    assert failed.returncode == 1


def test_the_dnf_script_prefers_dnf5_json_when_dnf5_is_there(tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "dnf5").write_text('#!/bin/sh\necho "[\\"$*\\"]"\n')
    (bindir / "dnf5").chmod(0o755)
    env = {"PATH": f"{bindir}:/usr/bin:/bin"}
    result = subprocess.run(
        list(dnf_command("dnf").argv), capture_output=True, text=True, env=env, check=False
    )
    assert result.stdout.splitlines() == [
        "@@patchgate:dnf5-json",
        '["-q advisory list --json --security"]',
        "@@patchgate:dnf5-json-cve",
        '["-q advisory list --json --security --with-cve"]',
    ]


# --- into the assessment ------------------------------------------------------------------------


def test_a_dnf_hosts_findings_carry_the_hosts_advisory_id_severity_and_cves() -> None:
    advisories = parse_dnf(output("dnf4-el9.txt")).value
    host = InventoryHost(name="rhel-01", criticality="high")
    upgradable = [
        UpgradablePackage("openssl", "1:3.0.7-24.el9", "1:3.0.7-25.el9_3"),
        UpgradablePackage("vim-minimal", "2:8.2.2637-20.el9_1", "2:8.2.2637-21.el9"),  # fixed
        UpgradablePackage("tzdata", "2023c-1.el9", "2024a-1.el9"),
    ]
    findings = {
        f.package: f
        for f in assessment.find_fixes(
            host,
            upgradable,
            records_from_host(advisories, host="rhel-01"),
            os_id="rhel",
            os_version="9.3",
            compare=partial(compare, "dnf"),
            known_exploited={"CVE-2023-3446": None},
            now=utc(2024, 2, 1),
        )
    }
    openssl = findings["openssl"]
    assert openssl.advisories == ("RHSA-2024:0310",) and openssl.severity == "high"
    assert openssl.cves == ("CVE-2023-3446", "CVE-2023-3817", "CVE-2023-5678")
    assert openssl.known_exploited and openssl.security
    assert openssl.reasons[0] == "severity high" and "published 9 days ago" in openssl.reasons
    assert findings["vim-minimal"].advisories == ()  # already at the fixed version
    assert findings["tzdata"].advisories == () and not findings["tzdata"].security
