"""The /patch parser is a pure function: text -> (subcommand, typed command) or UsageError."""

from __future__ import annotations

import pytest

from bot.slack.commands.builtin import Control, Decide, Hosts, Run, Status
from bot.slack.commands.handlers import default_registry
from bot.slack.commands.parser import normalise, parse
from bot.slack.commands.registry import UsageError
from workflows.models import Decision, RequestKind

REGISTRY = default_registry()


def test_empty_text_is_help() -> None:
    sub, _ = parse("   ", REGISTRY)
    assert sub.name == "help"


def test_run_with_an_em_dash_typed_by_a_slack_client_is_a_dry_run() -> None:
    assert parse("run weekly \u2014dry-run", REGISTRY)[1] == Run("weekly", True)
    assert parse("run weekly --dry-run", REGISTRY)[1] == Run("weekly", True)
    assert parse("run weekly", REGISTRY)[1] == Run("weekly", False)


def test_smart_quotes_group_a_rejection_reason() -> None:
    _sub, cmd = parse("reject 12 \u201cbad kernel\u201d \u2018today\u2019", REGISTRY)
    assert cmd == Decide(Decision.REJECT, 12, "bad kernel today")


def test_a_rejection_without_a_reason_parses_so_the_domain_refuses_and_audits_it() -> None:
    assert parse("reject 12", REGISTRY)[1] == Decide(Decision.REJECT, 12, None)


def test_control_subcommands_take_a_rollout_number_and_an_optional_reason() -> None:
    assert parse("pause #7 db migration", REGISTRY)[1] == Control(
        RequestKind.PAUSE, 7, "db migration"
    )
    assert parse("abort 7", REGISTRY)[1] == Control(RequestKind.ABORT, 7, None)


def test_status_and_hosts_arguments_are_typed() -> None:
    assert parse("status", REGISTRY)[1] == Status(None)
    assert parse("status 3", REGISTRY)[1] == Status(3)
    assert parse("hosts group:prod and not tag:pci", REGISTRY)[1] == Hosts(
        "group:prod and not tag:pci"
    )


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("frobnicate", "unknown subcommand 'frobnicate'"),
        ("reject", "a rejection needs a reason"),
        ("approve twelve", "'twelve' is not a rollout number"),
        ("run", "missing argument"),
        ("run weekly --fast", "unknown option '--fast'"),
        ("status 1 2", "unexpected '2'"),
        ('reject 1 "unclosed', "check your quotes"),
        ("hosts group:(", "bad selector"),
    ],
)
def test_bad_input_is_a_usage_error_naming_what_was_wrong(text: str, says: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse(text, REGISTRY)
    assert says in str(caught.value)


def test_normalise_maps_no_break_spaces_and_minus_signs() -> None:
    assert normalise("run\u00a0weekly \u2212\u2212dry-run") == "run weekly --dry-run"
