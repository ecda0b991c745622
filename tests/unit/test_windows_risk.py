"""The risk score fed by a fleet tool's severity and CVEs (issue 21): Microsoft's words
(Critical, Important, Moderate, Low) map to PatchGate's, a tool's CVSS base score
outranks the word, a score outside 0-10 is ignored, and "no rating" words are no
severity."""

from __future__ import annotations

import datetime as dt

import pytest

from workflows.assessment import canonical_severity, reported_findings
from workflows.ports import HostAdvisory, InventoryHost, PatchIdentity, UpgradablePackage

NOW = dt.datetime(2024, 1, 20, tzinfo=dt.UTC)
HOST = InventoryHost(name="win-01", criticality="high")  # +10
KB = "KB5034441"


def _finding(severity: str | None, cvss: float | None = None, cves: tuple[str, ...] = ()):  # type: ignore[no-untyped-def]
    upgradable = [
        UpgradablePackage(
            KB, None, "rev-1", security=True, identity=PatchIdentity(kb=KB, title="CU")
        )
    ]
    advisories = [HostAdvisory(id=KB, packages={KB: None}, cves=cves, severity=severity, cvss=cvss)]
    (finding,) = reported_findings(
        HOST,
        upgradable,
        advisories,
        os_id="windows",
        os_version="10.0.22631",
        now=NOW,
        source="intune win-01",
    )
    return finding


@pytest.mark.parametrize(
    ("word", "ours", "risk"),
    [
        ("Critical", "critical", round(9.5 * 5 + 10)),
        ("Important", "high", round(7.5 * 5 + 10)),
        ("Moderate", "medium", round(5.0 * 5 + 10)),
        ("Low", "low", round(2.5 * 5 + 10)),
        ("IMPORTANT ", "high", round(7.5 * 5 + 10)),
    ],
)
def test_microsofts_severity_words_score_as_patchgates(word: str, ours: str, risk: int) -> None:
    finding = _finding(word, cves=("CVE-2024-20666",))
    assert finding.severity == ours
    assert finding.reasons[0] == f"severity {ours}"
    assert finding.risk == risk
    assert finding.cves == ("CVE-2024-20666",) and finding.advisories == (KB,)
    assert finding.identity == PatchIdentity(kb=KB, title="CU")


def test_the_tools_cvss_base_score_outranks_its_word() -> None:
    finding = _finding("Moderate", cvss=8.8)
    assert finding.cvss == 8.8 and finding.severity == "medium"
    assert finding.reasons[0] == "CVSS 8.8" and finding.risk == round(8.8 * 5 + 10)


def test_a_cvss_without_a_word_gives_the_severity() -> None:
    finding = _finding(None, cvss=9.8)
    assert finding.severity == "critical" and finding.risk == round(9.8 * 5 + 10)


@pytest.mark.parametrize("bad", [11.0, -1.0, float("nan")])
def test_a_score_outside_0_to_10_is_ignored(bad: float) -> None:
    finding = _finding("Important", cvss=bad)
    assert finding.cvss is None and finding.reasons[0] == "severity high"


@pytest.mark.parametrize("word", ["Unspecified", "None", "optional", "", "bogus"])
def test_a_word_that_rates_nothing_leaves_a_security_update_unknown(word: str) -> None:
    finding = _finding(word)
    assert finding.severity is None
    assert finding.reasons[0] == "security update, severity unknown"
    assert finding.risk == 15  # 1 x 5, criticality high +10


def test_canonical_severity_maps_every_vendors_word() -> None:
    assert [canonical_severity(w) for w in ("urgent", "negligible", "unimportant", None)] == [
        "critical",
        "low",
        "low",
        None,
    ]


def test_a_known_exploited_cve_the_tool_reports_adds_25_as_a_feeds_does() -> None:
    upgradable = [UpgradablePackage(KB, None, "rev-1", security=True)]
    advisories = [
        HostAdvisory(id=KB, packages={KB: None}, cves=("CVE-2024-21338",), severity="Important")
    ]
    (finding,) = reported_findings(
        HOST,
        upgradable,
        advisories,
        os_id="windows",
        os_version="10.0.22631",
        now=NOW,
        source="intune win-01",
        known_exploited={"CVE-2024-21338": dt.date(2024, 3, 4)},
    )
    assert finding.known_exploited
    assert "known exploited (CVE-2024-21338)" in finding.reasons
    assert finding.risk == round(7.5 * 5 + 25 + 10)
