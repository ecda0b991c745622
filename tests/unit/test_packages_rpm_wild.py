"""yum and dnf outputs as they come in the wild: wrapped columns, obsoletes sections,
remarks after the repository column, plugin banners and mirror lists, dnf5's repository
progress, the security plugin's summaries; and check-update's exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest

from integrations.packages.base import CommandOutput
from integrations.packages.dnf import DnfDriver
from workflows.errors import CommandFailed

FIXTURES = Path(__file__).parents[1] / "fixtures" / "packages"
yum = DnfDriver("yum")
dnf5 = DnfDriver("dnf5")


def fixture(name: str, exit_code: int = 0) -> CommandOutput:
    return CommandOutput(exit_code, (FIXTURES / name).read_text(), "")


def test_yum_check_update_joins_every_wrapped_column_and_keeps_obsoleting_updates() -> None:
    parsed = yum.parse_upgradable(fixture("yum-check-update-el7-wrapped.txt", 100))
    got = {p.name: (p.candidate, p.source) for p in parsed.value}
    assert got == {
        "NetworkManager": ("1:1.18.8-2.el7_9", "updates"),
        "bind-libs": ("32:9.11.4-26.P2.el7_9.16", "updates"),
        "kernel": ("3.10.0-1160.119.1.el7", "updates"),
        "libreoffice-langpack-en": ("1:5.3.6.1-26.el7", "base"),
        "python-perf": ("3.10.0-1160.119.1.el7", "updates"),
        # the version fills its column: the repository wraps
        "screen": ("4.1.0-0.27.20120314git3c2946.el7_9", "updates"),
        # the name fills its column: the version and repository wrap
        "texlive-collection-fontsrecommended": ("2:svn28082.0-45.el7", "base"),
        "tzdata": ("2024a-1.el7", "updates"),
        # both: three lines
        "xorg-x11-server-Xvfb-with-a-very-long-sub-package-name": (
            "1.20.4-27.el7_9.0.0.0.0.0.0.0.1",
            "updates",
        ),
        # obsoleting packages are updates too (yum update installs them)
        "python2-pip": ("8.1.2-14.el7", "epel"),
        "python36-rpm-python-bindings-for-el7": ("4.11.3-9.el7", "epel"),
        "python2-simplejson": ("3.11.1-1.el7", "epel"),
    }
    assert parsed.unparsed == []
    assert (
        "obsoletes: python2-simplejson.x86_64 3.11.1-1.el7 replaces "
        "python-simplejson-speedups-for-old-interpreters.x86_64 3.3.3-1.el7"
    ) in parsed.notes
    assert (
        "obsoletes: python36-rpm-python-bindings-for-el7.x86_64 4.11.3-9.el7 replaces "
        "python36-rpm.x86_64 4.11.3-8.el7"
    ) in parsed.notes


def test_yum_security_plugin_summaries_and_remarks_after_the_repository_lose_nothing() -> None:
    # The security and priorities plugins' lines; a remark after the repository column
    # (as a plugin appends it) is a note, and the update is kept.
    parsed = yum.parse_upgradable(fixture("yum-check-update-security-el7.txt", 100))
    assert [p.name for p in parsed.value] == ["bind-libs", "glibc", "kernel"]
    assert parsed.value[1].candidate == "2.17-326.el7_9.3"
    assert parsed.value[1].source == "rhel-7-server-rpms"
    assert "glibc.x86_64: [security]" in parsed.notes
    assert parsed.unparsed == []


def test_yum_updateinfo_list_with_its_banner_and_done_line() -> None:
    parsed = yum.parse_security(fixture("yum-updateinfo-security-el7.txt"))
    assert parsed.unparsed == []
    assert parsed.value["bind-libs"].advisories == ("RHSA-2024:1249",)
    assert parsed.value["bind-libs"].version == "32:9.11.4-26.P2.el7_9.16"
    assert parsed.value["glibc"].severity == "Moderate"


def test_dnf5_repository_progress_lines_are_not_updates_or_errors() -> None:
    parsed = dnf5.parse_upgradable(fixture("dnf5-check-upgrade-f41.txt", 100))
    assert [p.name for p in parsed.value] == [
        "bash",
        "glibc",
        "glibc-langpack-en-with-a-long-name-for-wrapping",
    ]
    assert parsed.unparsed == []


@pytest.mark.parametrize("driver", [yum, dnf5, DnfDriver("dnf")])
def test_check_update_exit_codes_100_updates_0_none_1_error(driver: DnfDriver) -> None:
    assert driver.parse_upgradable(fixture("dnf5-check-upgrade-f41.txt", 100)).value
    assert (
        driver.parse_upgradable(
            CommandOutput(
                0,
                "Last metadata expiration check: 0:01:02 ago on Mon 07 Dec 2026 08:00:00 AM UTC.\n",
            )
        ).value
        == []
    )
    with pytest.raises(CommandFailed):
        driver.parse_upgradable(
            CommandOutput(1, "", "Error: Failed to download metadata for repo 'updates'")
        )
