"""Issue 16: one platform's fresh assessments merged into each host's share of the
pinned set, advisory data kept across a feed-less refresh, and the feed-backed
assessor the leader uses for the refresh before pinning."""

from __future__ import annotations

import datetime as dt
from typing import Any

from integrations.advisories.assessor import FeedAssessor
from integrations.advisories.feeds import AdvisoryFeed
from tests.enginekit import make_executor
from workflows.assessment import (
    AdvisoryRecord,
    Finding,
    HostsBaseline,
    apply_baseline,
    carry_advisories,
    merge_selected,
)
from workflows.plans import PackageSelection
from workflows.ports import InventoryHost

NOW = dt.datetime(2026, 1, 4, 2, 0, tzinfo=dt.UTC)


def fix(host: str, package: str, candidate: str, **kw: Any) -> Finding:
    values: dict[str, Any] = {
        "host": host,
        "package": package,
        "current": None,
        "candidate": candidate,
        "advisories": (),
        "cves": (),
        "severity": None,
        "cvss": None,
        "known_exploited": False,
        "published": None,
        "security": False,
    }
    values.update(kw)
    return Finding(**values)


def baseline(*findings: Finding) -> HostsBaseline:
    result = apply_baseline(findings, PackageSelection(include=["*"]), now=NOW)
    return HostsBaseline(fresh=(), stale=(), missing=(), result=result)


def test_the_union_of_every_hosts_fixes_is_pinned_and_each_host_gets_its_own_share() -> None:
    merged = merge_selected(
        ["a", "b", "c"],
        baseline(fix("b", "openssl", "3.0.13-1"), fix("c", "demo-app", "1.1")),
    )
    assert merged.agreed == {"demo-app": "1.1", "openssl": "3.0.13-1"}
    assert merged.specs == {"a": [], "b": ["openssl=3.0.13-1"], "c": ["demo-app=1.1"]}
    assert merged.left_over == {}


def test_a_version_most_hosts_report_wins_and_the_odd_host_keeps_it_as_left_over() -> None:
    merged = merge_selected(
        ["a", "b", "c"],
        baseline(
            fix("a", "openssl", "3.0.13-1"),
            fix("b", "openssl", "3.0.14-1"),
            fix("c", "openssl", "3.0.14-1"),
        ),
    )
    assert merged.agreed == {"openssl": "3.0.14-1"}
    assert merged.specs["a"] == [] and merged.specs["b"] == ["openssl=3.0.14-1"]
    assert merged.left_over == {
        "a": {"openssl": "3.0.13-1 is upgradable here; the set pins 3.0.14-1 (most hosts)"}
    }


def test_a_tie_goes_to_the_version_seen_first_in_ring_order() -> None:
    merged = merge_selected(["a", "b"], baseline(fix("b", "x", "2"), fix("a", "x", "1")))
    assert merged.agreed == {"x": "1"}


def test_a_feedless_refresh_keeps_the_advisories_known_for_the_same_candidate() -> None:
    old = [
        fix("a", "openssl", "3.0.13-1", advisories=("DSA-1",), severity="high", risk=60),
        fix("a", "demo-app", "1.1", advisories=("DSA-2",), severity="low", risk=20),
    ]
    new = [fix("a", "openssl", "3.0.13-1", risk=1), fix("a", "demo-app", "1.2", risk=1)]
    kept = {f.package: f for f in carry_advisories(new, old)}
    assert kept["openssl"].advisories == ("DSA-1",) and kept["openssl"].severity == "high"
    assert kept["openssl"].risk == 60
    assert kept["demo-app"].advisories == () and kept["demo-app"].candidate == "1.2"


async def test_the_feed_assessor_matches_the_upgradable_list_against_the_feed() -> None:
    host = InventoryHost(name="web-1")
    executor = make_executor([host])
    feed = AdvisoryFeed(
        records=[
            AdvisoryRecord(
                id="DSA-9", packages={"openssl": "3.0.13-1"}, cves=("CVE-2026-9",), severity="high"
            )
        ],
        known_exploited={"CVE-2026-9": None},
    )
    found = await FeedAssessor(executor, feed).assess(
        host, os_id="debian", os_version="12", package_manager="apt", now=NOW
    )
    by_name = {f.package: f for f in found}
    assert by_name["openssl"].advisories == ("DSA-9",)
    assert by_name["openssl"].known_exploited is True
    assert by_name["demo-app"].advisories == ()
