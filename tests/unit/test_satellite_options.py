"""The satellite backend's pure parts: its options and capabilities, package name
parsing, coverage gaps, and its registration from Settings (declaration or working)."""

from __future__ import annotations

import datetime as dt

import pytest
from pydantic import ValidationError

from bot.backends import backend_catalog
from bot.settings import Settings
from integrations.backends.satellite import SatelliteBackend
from integrations.backends.satellite.content import coverage_gap, package_version, split_nvra
from integrations.backends.satellite.errors import SatelliteError
from integrations.backends.satellite.options import capabilities, check_options
from tests.enginekit import make_executor, make_hosts


def test_bad_options_are_each_named_and_good_ones_pass() -> None:
    assert check_options({}) == []
    assert check_options({"organization_id": 1, "reboot": False, "host_search": "os = RHEL"}) == []
    problems = check_options(
        {"organization_id": 0, "reboot": "yes", "apply_feature": "rm -rf", "colour": 1}
    )
    assert len(problems) == 4
    assert any("unknown option(s) colour" in p for p in problems)
    assert any("satellite.apply_feature" in p for p in problems)


def test_satellite_never_declares_rollback_and_reboots_unless_told_not_to() -> None:
    assert not capabilities({}).rollback and capabilities({}).reboot
    assert not capabilities({"reboot": False}).reboot
    assert capabilities({}).assess and capabilities({}).inventory


def test_package_strings_parse_into_name_and_version() -> None:
    assert split_nvra("openssl-libs-1:3.0.13-1.el9.x86_64") == ("openssl-libs", "1:3.0.13-1.el9")
    assert split_nvra("demo-app-1.1-2.noarch") == ("demo-app", "1.1-2")
    with pytest.raises(SatelliteError, match="not a package"):
        split_nvra("openssl")
    assert package_version({"name": "a", "epoch": "0", "version": "1.2", "release": "3"}) == "1.2-3"
    assert package_version({"name": "a", "epoch": "2", "version": "1.2", "release": ""}) == "2:1.2"


def test_coverage_gaps_name_why_satellite_cannot_patch_a_host() -> None:
    now = dt.datetime(2026, 12, 7, tzinfo=dt.UTC)
    fresh = {
        "subscription_facet_attributes": {"uuid": "u", "last_checkin": "2026-12-06 20:00:00 UTC"}
    }
    assert coverage_gap(fresh, now=now, stale_hours=24) is None
    assert "no subscription" in (coverage_gap({}, now=now, stale_hours=24) or "")
    assert "not checked in" in (coverage_gap(fresh, now=now, stale_hours=1) or "")


def test_without_credentials_a_plan_naming_satellite_is_refused_as_not_configured() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    for catalog in (
        backend_catalog(settings),
        backend_catalog(settings, make_executor(make_hosts())),
    ):
        (problem,) = catalog["satellite"].check_options({})
        assert "PATCHGATE_SATELLITE_URL" in problem


def test_with_credentials_serve_gets_the_working_backend_and_the_password_stays_secret() -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        satellite_url="https://satellite.example.com/",
        satellite_user="patchgate",
        satellite_password="s3cret-pw",
    )
    assert settings.satellite_url == "https://satellite.example.com"
    assert "s3cret-pw" not in repr(settings)
    assert backend_catalog(settings)["satellite"].check_options({}) == []
    served = backend_catalog(settings, make_executor(make_hosts()))["satellite"]
    assert isinstance(served, SatelliteBackend)
    assert "s3cret-pw" not in repr(served._client)
    with pytest.raises(ValidationError, match="not an http"):
        Settings(_env_file=None, satellite_url="ftp://x")  # type: ignore[call-arg]


def test_the_awx_url_is_still_checked_beside_the_satellite_one() -> None:
    assert Settings(_env_file=None, awx_url="https://awx.example/").awx_url == (  # type: ignore[call-arg]
        "https://awx.example"
    )
    with pytest.raises(ValidationError, match="not an http"):
        Settings(_env_file=None, awx_url="awx.example")  # type: ignore[call-arg]
