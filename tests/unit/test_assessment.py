"""Risk scores with reasons, fixes matched by version and platform, baselines."""

from __future__ import annotations

import datetime as dt

from integrations.packages.versions import compare_debian
from workflows.assessment import AdvisoryRecord, Finding, apply_baseline, find_fixes
from workflows.plans import PackageSelection
from workflows.ports import InventoryHost, UpgradablePackage

NOW = dt.datetime(2024, 3, 31)
DSA = AdvisoryRecord(
    id="DSA-1",
    packages={"openssl": "3.0.13-1"},
    cves=("CVE-2024-0001",),
    cvss=9.8,
    severity="critical",
    published=dt.datetime(2024, 3, 1),
    ecosystem="Debian:12",
)


def fixes(
    host: InventoryHost, *packages: UpgradablePackage, os_version: str = "12"
) -> list[Finding]:
    return find_fixes(
        host,
        list(packages),
        [DSA],
        os_id="debian",
        os_version=os_version,
        compare=compare_debian,
        known_exploited={"CVE-2024-0001": dt.date(2024, 3, 5)},
        now=NOW,
    )


OPENSSL = UpgradablePackage("libssl3", "3.0.11-1", "3.0.13-1", source="openssl")


def test_the_risk_adds_cvss_kev_exposure_criticality_and_age_with_reasons() -> None:
    host = InventoryHost("web-01", internet_facing=True, criticality="high")
    (finding,) = fixes(host, OPENSSL)
    # 9.8*5=49 + 25 (KEV) + 10 (internet) + 10 (high) + 30 days/3=10 -> 104, capped
    assert finding.risk == 100
    assert finding.reasons == (
        "CVSS 9.8",
        "known exploited (CVE-2024-0001)",
        "internet-facing",
        "criticality high",
        "published 30 days ago",
    )
    quiet = InventoryHost("lab-01", criticality="low")
    assert fixes(quiet, OPENSSL)[0].risk == 49 + 25 + 0 + 10


def test_a_fix_matches_by_source_package_only_when_the_update_reaches_the_fixed_version() -> None:
    host = InventoryHost("web-01")
    short = UpgradablePackage("libssl3", "3.0.11-1", "3.0.12-1", source="openssl")
    assert fixes(host, short)[0].cves == ()
    assert fixes(host, OPENSSL)[0].cves == ("CVE-2024-0001",)
    assert fixes(host, OPENSSL, os_version="11")[0].cves == ()  # another release


def test_the_baseline_says_why_it_leaves_each_fix_out() -> None:
    host = InventoryHost("web-01")
    findings = fixes(
        host,
        OPENSSL,
        UpgradablePackage("vim", "9.0", "9.1"),
        UpgradablePackage("linux-image-amd64", "6.1.1", "6.1.2", security=True),
    )
    result = apply_baseline(
        findings,
        PackageSelection(security_only=True, holds=["linux-*"], approve_after_days=7),
        now=NOW,
    )
    assert [f.package for f in result.selected] == ["libssl3"]
    why = {f.package: reason for f, reason in result.left_out}
    assert why["vim"] == "not a security update (security_only)"
    assert why["linux-image-amd64"].startswith("no publication date")
    young = apply_baseline(findings[:1], PackageSelection(approve_after_days=45), now=NOW)
    assert young.left_out[0][1] == "published 30 days ago; the baseline waits 45"
    severe = apply_baseline(findings, PackageSelection(min_severity="critical"), now=NOW)
    assert [f.package for f in severe.selected] == ["libssl3"]


def _found(host: str, package: str, candidate: str, **kw: object) -> Finding:
    values: dict[str, object] = {
        "host": host,
        "package": package,
        "current": "1",
        "candidate": candidate,
        "advisories": (),
        "cves": (),
        "severity": "high",
        "cvss": None,
        "known_exploited": False,
        "published": dt.datetime(2024, 3, 1),
        "security": True,
    }
    values.update(kw)
    return Finding(**values)  # type: ignore[arg-type]


def test_the_rollout_baseline_uses_fresh_assessments_only_and_names_the_others() -> None:
    from workflows.assessment import baseline_for, render_baseline

    stored = {
        "a": (NOW - dt.timedelta(hours=2), [_found("a", "openssl", "3.0.13-1")]),
        "b": (NOW - dt.timedelta(hours=1), [_found("b", "curl", "8.5", severity="low")]),
        "old": (NOW - dt.timedelta(days=2), [_found("old", "zlib", "1.3")]),
    }
    baseline = baseline_for(
        ["a", "b", "old", "new"],
        stored,
        PackageSelection(min_severity="medium"),
        now=NOW,
        max_age=dt.timedelta(hours=24),
    )
    assert baseline.fresh == ("a", "b")
    assert [h for h, _ in baseline.stale] == ["old"] and baseline.missing == ("new",)
    assert baseline.selected_packages == ["openssl"]  # zlib's assessment is stale: unused
    assert baseline.specs_for("a") == (["openssl=3.0.13-1"], [])
    assert baseline.specs_for("b") == ([], ["openssl"])  # selected elsewhere only
    assert baseline.assessed_at == NOW - dt.timedelta(hours=2)
    assert render_baseline(baseline) == [
        "Baseline selects 1 fix(es):",
        "  + a openssl -> 3.0.13-1",
        "Baseline leaves out 1:",
        "  - b curl -> 8.5: severity low is below medium",
        "  ! old: assessment from 2024-03-29 00:00 is stale, not used",
        "  ! new: not assessed",
    ]


def test_a_platform_without_assessments_is_refused_only_when_the_baseline_needs_advisories() -> (
    None
):
    from workflows.assessment import refusal_without_assessment

    hosts = ["h1", "h2"]
    assert refusal_without_assessment("debian-12-amd64", hosts, PackageSelection()) is None
    assert refusal_without_assessment("p", hosts, PackageSelection(security_only=True)) is None
    refusal = refusal_without_assessment("p", hosts, PackageSelection(approve_after_days=3))
    assert refusal is not None
    assert refusal.startswith("p: no fresh assessment for h1, h2; the baseline's ")
    assert "approve_after_days need advisory data" in refusal
