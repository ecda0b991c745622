"""Offline advisory loaders: OSV records (CVEs, fixed versions, CVSS), KEV, host data."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from integrations.advisories import load_feed, load_kev, load_osv_dir, records_from_security
from integrations.advisories.osv import AdvisoryDataError, cvss_score, parse_osv
from integrations.packages.base import SecurityInfo

FEED = Path(__file__).resolve().parents[1] / "fixtures" / "advisories"


def test_osv_records_give_cves_fixed_versions_cvss_and_publication() -> None:
    records = {r.id: r for r in load_osv_dir(FEED / "osv")}
    dsa = records["DSA-5999-1"]
    assert dsa.cves == ("CVE-2024-0001",) and dsa.packages == {"openssl": "3.0.13-1"}
    assert dsa.cvss == 9.8 and dsa.severity == "critical" and dsa.ecosystem == "Debian:12"
    assert dsa.published == dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
    usn = records["USN-7000-1"]
    assert usn.cves == ("CVE-2024-0002",) and usn.severity == "low" and usn.cvss is None


def test_cvss_vectors_of_each_version_are_scored() -> None:
    assert cvss_score("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H") == 9.8
    assert cvss_score("AV:N/AC:L/Au:N/C:P/I:P/A:P") == 7.5


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"affected": []}, "has no id"),
        ({"id": "DSA-1", "affected": []}, "record DSA-1: affected must be"),
        ({"id": "DSA-2", "affected": [{"package": {}}]}, r"DSA-2: affected\[0\] has no package"),
        (
            {"id": "DSA-3", "severity": [{"score": "CVSS:3.1/AV:Q"}], "affected": [{}]},
            "DSA-3: bad CVSS vector",
        ),
    ],
)
def test_bad_osv_records_name_the_file_and_the_record(record: object, message: str) -> None:
    with pytest.raises(AdvisoryDataError, match=message):
        parse_osv(record, where="feed/x.json")


def test_an_unreadable_osv_file_names_its_path_and_line(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text('{"id": "DSA-1",\n  oops}')
    with pytest.raises(AdvisoryDataError, match=r"bad\.json:2: invalid JSON"):
        load_osv_dir(tmp_path)


def test_the_kev_catalogue_maps_cves_to_the_date_added(tmp_path: Path) -> None:
    assert load_kev(FEED / "kev.json") == {"CVE-2024-0001": dt.date(2024, 3, 5)}
    bad = tmp_path / "kev.json"
    bad.write_text(json.dumps({"vulnerabilities": [{"cveID": "nope"}]}))
    with pytest.raises(AdvisoryDataError, match=r"vulnerabilities\[0\]: bad cveID"):
        load_kev(bad)


def test_host_side_dnf_data_becomes_one_record_per_advisory() -> None:
    infos = {
        "openssl": SecurityInfo("openssl", "3.0.7-27", ("RHSA-2024:1",), "Important", ("CVE-1",)),
        "openssl-libs": SecurityInfo("openssl-libs", "3.0.7-27", ("RHSA-2024:1",), "Important"),
    }
    (record,) = records_from_security(infos, host="rhel-01")
    assert record.id == "RHSA-2024:1" and set(record.packages) == {"openssl", "openssl-libs"}
    assert record.cves == ("CVE-1",) and record.severity == "Important"


def test_the_feed_loads_both_sources_together() -> None:
    feed = load_feed(osv_dir=FEED / "osv", kev_file=FEED / "kev.json")
    assert len(feed.records) == 2 and "CVE-2024-0001" in feed.known_exploited
