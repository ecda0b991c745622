"""Preflight "is the pinned version still offered?" for dnf/yum and zypper (and apt's
command), on outputs captured from the real tools.

Provenance (no RHEL/SUSE hosts in the lab): dnf 4.14.0 and zypper 1.14.42 from Debian 12's
own packages, run with ``--installroot``/``--root`` against a createrepo_c repository of
noarch test rpms built with rpmbuild (demo-app 1.0/1.1/1.2-1.el9, bind-libs
32:9.16.23-14.el9_3.4), demo-app 1.0 installed; the ``-dropped`` captures after 1.0 was
removed from the repository. The dnf5 form (no blank line after each record: dnf5's
``--queryformat`` adds no newline) is derived from the dnf4 capture, not captured.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from integrations.packages import rpm
from integrations.packages.apt import AptDriver
from integrations.packages.base import CommandOutput
from integrations.packages.dnf import DnfDriver
from integrations.packages.zypper import ZypperDriver
from workflows.errors import CommandFailed, InputError

FIXTURES = Path(__file__).parents[1] / "fixtures" / "packages"
PINS = {"demo-app": "1.1-1.el9", "bind-libs": "32:9.16.23-14.el9_3.4"}


def fixture(name: str, exit_code: int = 0) -> CommandOutput:
    return CommandOutput(exit_code, (FIXTURES / name).read_text(), "")


@pytest.mark.parametrize("program", ["dnf", "dnf5", "yum"])
def test_dnf_asks_repoquery_for_every_offered_version_of_the_pinned_names(program: str) -> None:
    cmd = DnfDriver(program).unavailable(PINS)
    assert cmd.argv[0] == program and not cmd.sudo
    assert cmd.argv[1:6] == (
        "-q", "--setopt=skip_if_unavailable=False", "repoquery", "--available", "--queryformat"
    )  # fmt: skip
    assert cmd.argv[-2:] == ("bind-libs", "demo-app")
    assert "'%{name} %{epoch} %{version} %{release}\\n'" in cmd.shell()


def test_dnf_finds_offered_pins_with_epochs_and_reports_the_dropped_one() -> None:
    dnf = DnfDriver()
    ok = dnf.parse_unavailable(fixture("dnf4-repoquery-available.txt"), PINS)
    assert ok.value == [] and ok.unparsed == []
    pins = {**PINS, "demo-app": "1.0-1.el9"}
    gone = dnf.parse_unavailable(fixture("dnf4-repoquery-available-dropped.txt"), pins)
    assert gone.value == ["demo-app=1.0-1.el9"]


def test_dnf_epoch_zero_and_a_pin_without_release_match_as_dnf_would() -> None:
    dnf = DnfDriver()
    out = fixture("dnf4-repoquery-available.txt")
    assert dnf.parse_unavailable(out, {"demo-app": "0:1.2-1.el9"}).value == []
    assert dnf.parse_unavailable(out, {"demo-app": "1.2"}).value == []
    assert dnf.parse_unavailable(out, {"demo-app": "1.3"}).value == ["demo-app=1.3"]
    # the epoch is part of the version: 9.16.23 without 32: is another version
    assert dnf.parse_unavailable(out, {"bind-libs": "9.16.23-14.el9_3.4"}).value == [
        "bind-libs=9.16.23-14.el9_3.4"
    ]


def test_dnf5_records_without_blank_lines_parse_the_same() -> None:
    text = (FIXTURES / "dnf4-repoquery-available.txt").read_text().replace("\n\n", "\n")
    parsed = DnfDriver("dnf5").parse_unavailable(CommandOutput(0, text), PINS)
    assert parsed.value == [] and parsed.unparsed == []


def test_dnf_an_unreachable_repository_is_an_error_not_all_pins_gone() -> None:
    err = (FIXTURES / "dnf4-repoquery-repo-unreachable.stderr.txt").read_text()
    with pytest.raises(CommandFailed) as caught:
        DnfDriver().parse_unavailable(CommandOutput(1, "", err), PINS)
    assert "Failed to download metadata for repo 'gone'" in caught.value.output_tail


def test_dnf_reports_lines_it_does_not_understand() -> None:
    out = CommandOutput(0, "demo-app 0 1.1 1.el9\nsomething odd here\n")
    parsed = DnfDriver().parse_unavailable(out, {"demo-app": "1.1-1.el9"})
    assert parsed.value == [] and parsed.unparsed == ["something odd here"]


def test_zypper_searches_exact_names_with_details_as_xml() -> None:
    cmd = ZypperDriver().unavailable(PINS)
    assert cmd.argv == (
        "zypper", "--non-interactive", "--no-color", "--xmlout", "search", "--match-exact",
        "--details", "--type", "package", "bind-libs", "demo-app",
    )  # fmt: skip
    assert not cmd.sudo


def test_zypper_finds_offered_pins_and_ignores_the_installed_only_row() -> None:
    zypper = ZypperDriver()
    assert zypper.parse_unavailable(fixture("zypper-search-details.xml"), PINS).value == []
    pins = {**PINS, "demo-app": "1.0-1.el9"}
    assert zypper.parse_unavailable(fixture("zypper-search-details.xml"), pins).value == []
    dropped = zypper.parse_unavailable(fixture("zypper-search-details-dropped.xml"), pins)
    assert dropped.value == ["demo-app=1.0-1.el9"]  # only "(System Packages)" has it now


def test_zypper_exit_104_no_match_means_every_pin_is_gone() -> None:
    out = fixture("zypper-search-details-none.xml", 104)
    assert ZypperDriver().parse_unavailable(out, PINS).value == [
        "bind-libs=32:9.16.23-14.el9_3.4",
        "demo-app=1.1-1.el9",
    ]
    with pytest.raises(CommandFailed):  # 105 (interrupted) is a failure
        ZypperDriver().parse_unavailable(CommandOutput(105, ""), PINS)


def test_apt_lists_every_version_per_name_and_compares_as_dpkg() -> None:
    apt = AptDriver()
    cmd = apt.unavailable({"demo-app": "1.1", "openssl": "3.0.11-1~deb12u2"})
    assert cmd.argv[-2:] == ("demo-app", "openssl") and not cmd.sudo
    # What the script prints on a lab host (1.1 in the repository, 1.0 installed);
    # openssl unknown there: a block with no versions.
    out = CommandOutput(0, "@ demo-app\nV 1.1\nV 1.0\n@ openssl\n")
    parsed = apt.parse_unavailable(out, {"demo-app": "1.1", "openssl": "3.0.11-1~deb12u2"})
    assert parsed.value == ["openssl=3.0.11-1~deb12u2"] and parsed.unparsed == []
    assert apt.parse_unavailable(out, {"demo-app": "1.2"}).value == ["demo-app=1.2"]
    assert apt.parse_unavailable(out, {"demo-app": "0:1.1"}).value == []  # epoch 0 = none


@pytest.mark.parametrize("driver", [AptDriver(), DnfDriver(), ZypperDriver()])
def test_bad_names_or_versions_never_make_a_command(driver: object) -> None:
    with pytest.raises(InputError):
        driver.unavailable({"demo-app; reboot": "1.1"})  # type: ignore[attr-defined]
    with pytest.raises(InputError):
        driver.unavailable({"demo-app": "$(reboot)"})  # type: ignore[attr-defined]


def test_pin_matching_rules() -> None:
    assert rpm.pin_offered("1.1-1.el9", "1.1-1.el9")
    assert rpm.pin_offered("0:1.1-1.el9", "1.1-1.el9")
    assert not rpm.pin_offered("1.1-2.el9", "1.1-1.el9")
    assert not rpm.pin_offered("1:1.1-1.el9", "1.1-1.el9")
    assert rpm.pin_offered("1.1", "1.1-7.el9") and not rpm.pin_offered("1.1", "1.10-1")
