"""PatchPlan: amounts, durations, validation rules, located errors, round trip, hash."""

from __future__ import annotations

import copy
import datetime as dt
import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck as HealthCheck_
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from workflows.errors import PlanError
from workflows.plans import (
    Amount,
    GateSpec,
    HealthCheck,
    PackageSelection,
    PatchPlan,
    format_duration,
    load_plan,
    load_plans,
    parse_amount,
    parse_duration,
    parse_selector,
    plan_hash,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "plans"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def minimal(**extra: Any) -> dict[str, Any]:
    return {"name": "p", "rings": [{"name": "all", "hosts": "all"}], **extra}


# --- amounts ------------------------------------------------------------------------------


def test_percent_batches_round_up_and_take_at_least_one_host() -> None:
    assert parse_amount("25%").batch_of(10) == 3
    assert parse_amount("10%").batch_of(30) == 3  # exact, no float drift up to 4
    assert parse_amount("1%").batch_of(5) == 1
    assert parse_amount("100%").batch_of(7) == 7


def test_batch_of_an_empty_ring_is_one_and_never_exceeds_the_ring() -> None:
    assert parse_amount("50%").batch_of(0) == 1
    assert parse_amount(10).batch_of(3) == 3
    assert parse_amount(2).batch_of(0) == 1


def test_percent_budgets_round_down_and_counts_are_kept_as_given() -> None:
    assert parse_amount("5%").budget_of(19) == 0
    assert parse_amount("5%").budget_of(20) == 1
    assert parse_amount("33%").budget_of(10) == 3
    assert parse_amount(2).budget_of(1) == 2


def test_samples_round_up_take_one_of_a_few_and_none_of_nothing() -> None:
    assert parse_amount("10%").sample_of(20) == 2
    assert parse_amount("10%").sample_of(21) == 3
    assert parse_amount("10%").sample_of(3) == 1
    assert parse_amount("10%").sample_of(0) == 0
    assert parse_amount(5).sample_of(3) == 3


def test_fractional_percentages_are_exact_and_print_canonically() -> None:
    assert parse_amount("12.5%").batch_of(8) == 1
    assert parse_amount("12.5%").budget_of(16) == 2
    assert str(parse_amount("12.50%")) == "12.5%"
    assert str(parse_amount("100%")) == "100%"


@pytest.mark.parametrize("bad", ["lots", "-1", -1, "0%", "101%", "%", True, 1.5, None])
def test_bad_amounts_are_refused(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_amount(bad)


def test_a_digit_string_is_a_count() -> None:
    assert parse_amount("25") == Amount(count=25)


def test_an_unreadable_amount_says_what_is_expected() -> None:
    with pytest.raises(ValueError, match='expected a count or a percentage like "25%"'):
        parse_amount("half")


# --- durations ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("30m", 1800), ("4h", 14400), ("2d", 172800), ("1h30m", 5400), (45, 45)],
)
def test_durations_parse_from_units_or_seconds(text: object, seconds: int) -> None:
    assert parse_duration(text) == dt.timedelta(seconds=seconds)


@pytest.mark.parametrize("bad", ["soon", "1x", "h", "", -5, "1.5h", True])
def test_bad_durations_are_refused(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_durations_format_back_to_their_canonical_text() -> None:
    assert format_duration(dt.timedelta(hours=1, minutes=30)) == "1h30m"
    assert format_duration(dt.timedelta(0)) == "0s"
    assert parse_duration(format_duration(dt.timedelta(days=1, seconds=5))) == dt.timedelta(
        days=1, seconds=5
    )


# --- models -------------------------------------------------------------------------------


def test_unknown_fields_are_errors_not_silently_ignored() -> None:
    with pytest.raises(ValidationError, match="bach"):
        PatchPlan.model_validate({"name": "p", "rings": [{"name": "a", "hosts": "all", "bach": 2}]})


def test_a_plan_needs_at_least_one_ring() -> None:
    with pytest.raises(ValidationError):
        PatchPlan.model_validate({"name": "p", "rings": []})


def test_ring_hosts_are_parsed_into_a_selector() -> None:
    plan = PatchPlan.model_validate(
        {"name": "p", "rings": [{"name": "a", "hosts": "group:prod and not tag:pci"}]}
    )
    assert plan.rings[0].hosts == parse_selector("group:prod and not tag:pci")
    assert plan.rings[0].batch == parse_amount("25%")
    assert plan.rings[0].failure_budget == parse_amount(0)


def test_health_check_fields_must_match_its_type() -> None:
    with pytest.raises(ValidationError, match="port applies to tcp checks"):
        HealthCheck.model_validate({"name": "x", "type": "http", "url": "http://h/", "port": 80})
    with pytest.raises(ValidationError, match="a systemd check needs 'unit'"):
        HealthCheck.model_validate({"name": "x", "type": "systemd"})
    check = HealthCheck.model_validate({"name": "x", "type": "command", "argv": ["/bin/true"]})
    assert check.argv == ["/bin/true"]
    assert check.timeout == dt.timedelta(seconds=10)


def test_command_checks_take_a_list_never_a_shell_string() -> None:
    with pytest.raises(ValidationError):
        HealthCheck.model_validate(
            {"name": "x", "type": "command", "argv": "systemctl is-active x"}
        )


def test_http_check_urls_may_only_use_the_host_and_address_placeholders() -> None:
    ok = HealthCheck.model_validate(
        {"name": "x", "type": "http", "url": "http://{address}:80/{host}"}
    )
    assert ok.url == "http://{address}:80/{host}"
    with pytest.raises(ValidationError, match="placeholders"):
        HealthCheck.model_validate({"name": "x", "type": "http", "url": "http://{ip}/"})


def test_approval_gates_need_someone_who_can_approve() -> None:
    with pytest.raises(ValidationError, match="needs approvers"):
        GateSpec.model_validate({"type": "approval"})
    with pytest.raises(ValidationError, match="at least one approver"):
        GateSpec.model_validate({"type": "approval", "approvers": {"users": []}})


def test_a_quorum_larger_than_the_named_users_can_never_be_met() -> None:
    with pytest.raises(ValidationError, match="quorum 3 can never be met"):
        GateSpec.model_validate(
            {"type": "approval", "approvers": {"users": ["U01", "U02"]}, "quorum": 3}
        )
    gate = GateSpec.model_validate(
        {"type": "approval", "approvers": {"groups": ["S01"]}, "quorum": 3}
    )
    assert gate.quorum == 3


def test_escalation_needs_an_escalation_group() -> None:
    with pytest.raises(ValidationError, match="escalation_group"):
        GateSpec.model_validate(
            {"type": "approval", "approvers": {"users": ["U01"]}, "on_timeout": "escalate"}
        )


def test_soak_belongs_to_auto_gates_and_approvers_to_approval_gates() -> None:
    with pytest.raises(ValidationError, match="soak applies to auto gates"):
        GateSpec.model_validate({"type": "none", "soak": "10m"})
    with pytest.raises(ValidationError, match="approvers applies to approval gates"):
        GateSpec.model_validate({"type": "auto", "approvers": {"users": ["U01"]}})


def test_slack_ids_are_checked_by_pattern() -> None:
    with pytest.raises(ValidationError, match="not a Slack user-group ID"):
        GateSpec.model_validate({"type": "approval", "approvers": {"groups": ["U01"]}})
    with pytest.raises(ValidationError, match="not a Slack channel ID"):
        PatchPlan.model_validate(minimal(slack={"channel": "#ops"}))


def test_blackouts_need_aware_times_and_an_end_after_the_start() -> None:
    with pytest.raises(ValidationError, match="must be after start"):
        PatchPlan.model_validate(
            minimal(
                blackouts=[
                    {"start": "2030-01-02T00:00Z", "end": "2030-01-01T00:00Z", "reason": "x"}
                ]
            )
        )
    with pytest.raises(ValidationError):
        PatchPlan.model_validate(
            minimal(
                blackouts=[{"start": "2030-01-01T00:00", "end": "2030-01-02T00:00", "reason": "x"}]
            )
        )


def test_schedules_check_cron_and_time_zone() -> None:
    with pytest.raises(ValidationError, match="5 fields"):
        PatchPlan.model_validate(minimal(schedule={"cron": "0 0 2 * * 0", "duration": "1h"}))
    with pytest.raises(ValidationError, match="not a valid cron"):
        PatchPlan.model_validate(minimal(schedule={"cron": "0 25 * * *", "duration": "1h"}))
    with pytest.raises(ValidationError, match="unknown time zone"):
        PatchPlan.model_validate(
            minimal(schedule={"cron": "0 2 * * 0", "timezone": "Europe/Nowhere", "duration": "1h"})
        )


def test_emergency_may_only_skip_rings_the_plan_has() -> None:
    with pytest.raises(ValidationError, match="'canary' is not a ring of this plan"):
        PatchPlan.model_validate(minimal(emergency={"skip_rings": ["canary"]}))


def test_ring_names_are_unique() -> None:
    with pytest.raises(ValidationError, match="already used by rings\\[0\\]"):
        PatchPlan.model_validate(
            {"name": "p", "rings": [{"name": "a", "hosts": "all"}, {"name": "a", "hosts": "all"}]}
        )


def test_package_selection_honours_security_severity_globs_and_holds() -> None:
    sel = PackageSelection(
        security_only=True,
        min_severity="high",
        include=["open*", "libc6"],
        exclude=["openjdk-*"],
        holds=["openssl"],
    )
    assert sel.selects("openssh-server", security=True, severity="critical")
    assert sel.selects("libc6", security=True, severity="Important")  # Red Hat's word for high
    assert not sel.selects("openssh-server", security=False, severity="critical")
    assert not sel.selects("openssh-server", security=True, severity="medium")
    assert not sel.selects("openssh-server", security=True, severity=None)
    assert not sel.selects("openjdk-17", security=True, severity="critical")
    assert not sel.selects("openssl", security=True, severity="critical")
    assert not sel.selects("curl", security=True, severity="critical")


def test_a_ring_uses_its_own_checks_or_else_the_plans() -> None:
    plan = PatchPlan.model_validate(
        {
            "name": "p",
            "health_checks": [{"name": "ssh", "type": "tcp", "port": 22}],
            "rings": [
                {"name": "a", "hosts": "all"},
                {"name": "b", "hosts": "all", "health_checks": []},
            ],
        }
    )
    assert [c.name for c in plan.checks_for("a")] == ["ssh"]
    assert plan.checks_for(plan.rings[1]) == []


# --- round trip and hash ------------------------------------------------------------------


@pytest.mark.parametrize("example", sorted(EXAMPLES.glob("*.yml")), ids=lambda p: p.name)
def test_every_example_plan_validates_and_round_trips_through_json(example: Path) -> None:
    plan = load_plan(example)
    snapshot = json.loads(json.dumps(plan.model_dump(mode="json")))
    again = PatchPlan.model_validate(snapshot)
    assert again == plan
    assert plan_hash(again) == plan_hash(plan)


def test_selectors_and_amounts_dump_as_their_text() -> None:
    plan = load_plan(EXAMPLES / "weekly.yml")
    dumped = plan.model_dump(mode="json")
    canary = next(r for r in dumped["rings"] if r["name"] == "canary")
    assert canary["hosts"] == "group:prod"
    assert canary["sample"] == "10%"
    assert dumped["rings"][1]["batch"] == 1
    assert dumped["schedule"]["duration"] == "4h"


def test_the_hash_changes_with_any_setting_and_is_sha256_hex() -> None:
    one = PatchPlan.model_validate(minimal())
    two = PatchPlan.model_validate(
        {"name": "p", "rings": [{"name": "all", "hosts": "all", "batch": 2}]}
    )
    assert len(plan_hash(one)) == 64
    assert plan_hash(one) == plan_hash(PatchPlan.model_validate(minimal()))
    assert plan_hash(one) != plan_hash(two)


# --- located errors -----------------------------------------------------------------------


THREE_ERRORS = """
    name: broken
    schedule:
      cron: "0 2 * * 0"
      timezone: Mars/Olympus
      duration: 4h
    rings:
      - name: dev
        hosts: group:dev
      - name: staging
        hosts: group:staging and (tag:x or)
      - name: prod
        hosts: group:prod
        batch: lots
"""


def test_a_plan_with_three_mistakes_gets_exactly_three_located_messages(tmp_path: Path) -> None:
    path = write(tmp_path, "broken.yml", THREE_ERRORS)
    with pytest.raises(PlanError) as caught:
        load_plan(path)
    messages = caught.value.messages
    assert len(messages) == 3
    assert messages[0].startswith(f"{path}:4 schedule.timezone: unknown time zone 'Mars/Olympus'")
    assert messages[1].startswith(
        f'{path}:10 rings[1].hosts: bad selector: unexpected ")" at column 28'
    )
    assert messages[2] == f'{path}:13 rings[2].batch: expected a count or a percentage like "25%"'


def test_a_missing_field_is_located_at_its_parent_mapping(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "p.yml",
        """
        name: p
        rings:
          - name: a
            hosts: all
          - name: b
            gate:
              type: approval
        """,
    )
    with pytest.raises(PlanError) as caught:
        load_plan(path)
    assert caught.value.messages == [
        f"{path}:5 rings[1].hosts: required field is missing",
        f"{path}:6 rings[1].gate.approvers: an approval gate needs approvers "
        "(groups: [S…] and/or users: [U…])",
    ]


def test_model_rules_are_located_at_the_field_they_are_about(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "p.yml",
        """
        name: p
        rings:
          - name: a
            hosts: all
            gate:
              type: approval
              approvers: {users: [U01]}
              quorum: 2
        blackouts:
          - start: 2030-01-02T00:00:00Z
            end: 2030-01-01T00:00:00Z
            reason: x
        """,
    )
    with pytest.raises(PlanError) as caught:
        load_plan(path)
    assert caught.value.messages == [
        f"{path}:8 rings[0].gate.quorum: quorum 2 can never be met: only 1 approver(s) named "
        "and no group",
        f"{path}:11 blackouts[0].end: must be after start",
    ]


def test_unknown_fields_and_bad_choices_are_reported_together(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "p.yml",
        """
        name: p
        reboot: sometimes
        rings:
          - name: a
            hosts: all
            bach: 2
        """,
    )
    with pytest.raises(PlanError) as caught:
        load_plan(path)
    assert caught.value.messages == [
        f"{path}:2 reboot: expected 'never', 'if-required' or 'always', got 'sometimes'",
        f"{path}:6 rings[0].bach: unknown field (did you mean 'batch'?)",
    ]


def test_yaml_syntax_errors_are_located(tmp_path: Path) -> None:
    path = write(tmp_path, "p.yml", "name: p\nrings:\n  - name: a\n   hosts: b\n")
    with pytest.raises(PlanError) as caught:
        load_plan(path)
    [message] = caught.value.messages
    assert message.startswith(f"{path}:4: invalid YAML")


def test_duplicate_keys_are_yaml_errors(tmp_path: Path) -> None:
    path = write(tmp_path, "p.yml", "name: p\nname: q\nrings: []\n")
    with pytest.raises(PlanError) as caught:
        load_plan(path)
    assert caught.value.messages[0].startswith(f"{path}:2: invalid YAML")
    assert "duplicate key" in caught.value.messages[0]


def test_a_file_that_is_not_a_mapping_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "p.yml", "- just\n- a list\n")
    with pytest.raises(PlanError, match="a plan file is a YAML mapping"):
        load_plan(path)


# --- directories --------------------------------------------------------------------------


def test_plans_are_loaded_by_their_name_field_with_their_hash(tmp_path: Path) -> None:
    write(tmp_path, "one.yml", "name: alpha\nrings: [{name: a, hosts: all}]\n")
    write(tmp_path, "two.yaml", "name: beta\nrings: [{name: a, hosts: all}]\n")
    write(tmp_path, "notes.txt", "not a plan")
    plans = load_plans(tmp_path)
    assert sorted(plans) == ["alpha", "beta"]
    assert plans["alpha"].path == tmp_path / "one.yml"
    assert plans["alpha"].hash == plan_hash(plans["alpha"].plan)


def test_two_files_with_the_same_plan_name_are_both_named(tmp_path: Path) -> None:
    write(tmp_path, "a.yml", "name: weekly\nrings: [{name: a, hosts: all}]\n")
    write(tmp_path, "b.yml", "# copy\nname: weekly\nrings: [{name: b, hosts: all}]\n")
    with pytest.raises(PlanError) as caught:
        load_plans(tmp_path)
    assert caught.value.messages == [
        f"{tmp_path / 'b.yml'}:2 name: plan name 'weekly' is already used by {tmp_path / 'a.yml'}:1"
    ]


def test_errors_of_every_file_are_collected(tmp_path: Path) -> None:
    write(tmp_path, "a.yml", "name: a\nrings: [{name: a, hosts: 'group:'}]\n")
    write(tmp_path, "b.yml", "name: b\nrings: [{name: b, hosts: all, batch: '0%'}]\n")
    write(tmp_path, "c.yml", "name: c\nrings: [{name: c, hosts: all}]\n")
    with pytest.raises(PlanError) as caught:
        load_plans(tmp_path)
    assert [m.split(" ")[0] for m in caught.value.messages] == [
        f"{tmp_path / 'a.yml'}:2",
        f"{tmp_path / 'b.yml'}:2",
    ]


def test_an_unknown_field_suggests_the_closest_known_one_at_its_depth(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "p.yml",
        """
        name: p
        rings:
          - name: a
            hosts: all
            health_checks: [{name: x, type: tcp, port: 22, timeot: 3s}]
            gate: {type: approval, approvers: {user: [U01]}}
        zzz: 1
        """,
    )
    with pytest.raises(PlanError) as caught:
        load_plan(path)
    assert caught.value.messages == [
        f"{path}:5 rings[0].health_checks[0].timeot: unknown field (did you mean 'timeout'?)",
        f"{path}:6 rings[0].gate.approvers.user: unknown field (did you mean 'users'?)",
        f"{path}:7 zzz: unknown field (check the spelling)",
    ]


# --- robustness ---------------------------------------------------------------------------

_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 10**6),
    st.floats(allow_nan=False),
    st.text(max_size=12),
    st.sampled_from(["25%", "0%", "{host.x}", "http://{x}/", "approval", "tcp", "1h", "S01"]),
    st.lists(st.text(max_size=5), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*prefix, index))
    return found


_EXAMPLE = load_plan(EXAMPLES / "weekly.yml").model_dump(mode="json")
_PATHS = _paths(_EXAMPLE)


@settings(max_examples=300, suppress_health_check=[HealthCheck_.too_slow])
@given(st.sampled_from(_PATHS), _leaves)
def test_any_wrong_value_anywhere_is_a_validation_error_never_a_crash(
    path: tuple[Any, ...], value: Any
) -> None:
    data = copy.deepcopy(_EXAMPLE)
    node = data
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    try:
        plan = PatchPlan.model_validate(data)
    except ValidationError:
        return
    assert PatchPlan.model_validate(plan.model_dump(mode="json")) == plan
