"""The pure parts of reporting: figures, periods, the framework mapping, SLA settings."""

from __future__ import annotations

import datetime as dt

import pytest

from bot.settings import load_settings
from workflows.errors import ConfigError, InputError
from workflows.reports import (
    FRAMEWORKS,
    Detection,
    Figures,
    PatchRun,
    Period,
    fix_patched_at,
    load_mapping,
    mapping_for,
)

UTC = dt.UTC
D = dt.timedelta(days=1)
START = dt.datetime(2026, 1, 1, tzinfo=UTC)
PERIOD = Period(START, START + 30 * D)


def detection(severity: str = "high", available: dt.datetime = START, **kw: object) -> Detection:
    values: dict[str, object] = {
        "host": "h1",
        "package": "openssl",
        "candidate": "3.0.13-1",
        "severity": severity,
        "available": available,
        "first_detected": available,
    }
    values.update(kw)
    return Detection(**values)  # type: ignore[arg-type]


def test_a_fix_is_patched_by_the_first_run_after_detection_at_or_beyond_the_fixed_version() -> None:
    runs = [
        PatchRun(START - D, {"openssl": "3.0.13-1"}),  # before detection: not this fix
        PatchRun(START + D, {"openssl": "3.0.12-1"}),  # older version
        PatchRun(START + 2 * D, {"openssl": "3.0.14-1"}),  # newer: patched with a compare
    ]

    def compare(manager: str | None, a: str, b: str) -> int:
        return (a > b) - (a < b)

    found = detection()
    assert fix_patched_at(found, runs, manager="apt", compare=compare) == START + 2 * D
    assert fix_patched_at(found, runs, manager="apt", compare=None) is None  # equal only


def test_sla_share_counts_open_fixes_past_their_sla_as_misses_and_exposure_is_clipped() -> None:
    figures = Figures(period=PERIOD, sla_days={"high": 10})
    figures.add_fix(detection(available=START - 5 * D), START + 2 * D)  # 7 days: within
    figures.add_fix(detection(available=START), START + 12 * D)  # 12 days: missed
    figures.add_fix(detection(available=START + 5 * D), None)  # open 25 days: overdue
    figures.add_fix(detection(available=START + 25 * D), None)  # open 5 days: not yet due
    figures.add_fix(detection(available=START - 9 * D), START - D)  # closed before: ignored
    high = figures.severities["high"]
    assert sorted(high.patched) == [7.0, 12.0]
    assert (high.within_sla, high.sla_population, high.sla_share) == (1, 3, 1 / 3)
    assert (high.open_at_end, high.overdue_open) == (2, 1)
    assert high.exposure_days == pytest.approx(2 + 12 + 25 + 5)
    assert high.mean_days == 9.5 and high.median_days == 9.5


def test_periods_are_cut_into_days_up_to_a_month_and_weeks_beyond() -> None:
    assert len(PERIOD.buckets()) == 30
    quarter = Period(START, START + 90 * D)
    buckets = quarter.buckets()
    assert len(buckets) == 13 and buckets[-1] == (START + 84 * D, START + 90 * D)
    assert quarter.bucket_of(START + 8 * D) == 1
    with pytest.raises(ValueError, match="end after it starts"):
        Period(START, START)


def test_the_framework_mapping_cites_each_control_and_marks_judgements() -> None:
    mapping = load_mapping()
    ids = {key: [c["id"] for c in fw["controls"]] for key, fw in mapping["frameworks"].items()}
    assert set(ids) == set(FRAMEWORKS)
    assert "Requirement 6.3.3" in ids["pci"] and "A.8.8" in ids["iso27001"]
    assert {"CC7.1", "CC8.1"} <= set(ids["soc2"])
    assert ids["hipaa"] == [
        "45 CFR §164.308(a)(1)(ii)(A)",
        "45 CFR §164.308(a)(1)(ii)(B)",
        "45 CFR §164.308(a)(5)(ii)(B)",
    ]
    pci = {c["id"]: c for c in mapping["frameworks"]["pci"]["controls"]}
    assert pci["Requirement 6.3.3"]["judgement"] is False
    assert pci["Requirement 11.3.1"]["judgement"] is True
    assert set(mapping_for("iso27001")["frameworks"]) == {"iso27001"}
    with pytest.raises(InputError, match="unknown framework"):
        mapping_for("nist")
    with pytest.raises(ValueError, match="malformed"):
        load_mapping(
            "version: 1\nframeworks:\n"
            + "".join(
                f"  {k}:\n    controls:\n      - {{id: x, judgement: false, sections: [nope]}}\n"
                for k in FRAMEWORKS
            )
        )


def test_sla_days_setting_is_parsed_and_bad_pairs_name_the_variable() -> None:
    settings = load_settings(_env_file=None, sla_days="critical=3, high=14")
    assert settings.sla_day_map == {"critical": 3, "high": 14}
    with pytest.raises(ConfigError) as caught:
        load_settings(_env_file=None, sla_days="urgent=1")
    assert caught.value.problems[0].startswith("PATCHGATE_SLA_DAYS: 'urgent=1' is not of the form")
