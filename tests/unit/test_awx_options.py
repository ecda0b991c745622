"""The awx backend's plan options, capabilities and header parsing (pure, no I/O)."""

from __future__ import annotations

import email.utils

from pydantic import SecretStr

from integrations.backends.awx.backend import AwxBackend
from integrations.backends.awx.client import AwxClient, parse_retry_after
from integrations.backends.awx.options import check_options, unsafe_host_names


def backend() -> AwxBackend:
    return AwxBackend(AwxClient("https://awx.example.com", SecretStr("t")))


def test_unknown_option_keys_are_refused_by_name() -> None:
    problems = check_options({"job_template": 5, "job_templte": 6, "limit": "all"})

    assert len(problems) == 1
    assert "job_templte" in problems[0] and "limit" in problems[0]


def test_bad_template_and_inventory_ids_are_each_reported() -> None:
    problems = check_options(
        {"job_template": 0, "reboot_job_template": True, "inventory": "3", "assess_timeout": -1}
    )

    assert len(problems) == 4
    assert any(p.startswith("awx.job_template: a job template id must be") for p in problems)
    assert any(p.startswith("awx.reboot_job_template:") for p in problems)
    assert any(p.startswith("awx.inventory:") for p in problems)
    assert any(p.startswith("awx.assess_timeout:") for p in problems)


def test_the_patch_template_is_required_and_good_options_pass() -> None:
    assert check_options({}) == [
        "awx.job_template: required (the id or name of the patch job template)"
    ]
    assert check_options({"job_template": "Patch Linux", "inventory": 3}) == []


def test_capabilities_follow_the_configured_templates() -> None:
    bare = backend().capabilities({"job_template": 1})
    full = backend().capabilities(
        {
            "job_template": 1,
            "rollback_job_template": 2,
            "reboot_job_template": 3,
            "assess_job_template": 4,
        }
    )

    assert (bare.rollback, bare.reboot, bare.assess) == (False, False, False)
    assert (full.rollback, full.reboot, full.assess) == (True, True, True)
    assert bare.health and bare.inventory and not bare.per_host


def test_host_names_that_are_patterns_in_a_limit_are_unsafe() -> None:
    names = ["web1", "db-2.example.com", "web*", "!prod", "a,b", "~re", "x:y", "h[1:3]", ""]

    assert unsafe_host_names(names) == ["web*", "!prod", "a,b", "~re", "x:y", "h[1:3]", ""]


def test_retry_after_is_read_as_seconds_or_an_http_date() -> None:
    now = 1_800_000_000.0
    date = email.utils.formatdate(now + 30, usegmt=True)

    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(date, now=now) == 30.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_the_client_refuses_a_url_that_is_not_http() -> None:
    try:
        AwxClient("awx.example.com", SecretStr("t"))
    except ValueError as exc:
        assert "http(s)://" in str(exc)
    else:
        raise AssertionError("a bare host name was accepted")


def test_an_aap_gateway_api_path_is_joined_to_the_url() -> None:
    client = AwxClient("https://aap.example.com/", SecretStr("t"), api_path="/api/controller/v2/")

    assert client.api_root == "https://aap.example.com/api/controller/v2/"
