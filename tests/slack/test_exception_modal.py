"""/patch exception HOST [PACKAGE|CVE] opens a form at once; its submission grants the
exception through the domain, as the CLI does, with errors shown in the form."""

from __future__ import annotations

import json
from typing import Any

import pytest
import sqlalchemy as sa

from bot.slack.commands.registry import UsageError
from bot.slack.exceptions.command import ExceptionCommand, parse
from bot.slack.exceptions.ids import ExceptionModal
from tests.enginekit import OUTSIDER, REQUESTER
from tests.fakes.slack_api import SlackEmulator
from tests.slack.conftest import Bot
from workflows import assessment
from workflows.db import read_only, unit_of_work
from workflows.models import Event, HostException, OutboxItem, Ticket

OWNER = "U0DBTEAM1"


def submission(view: dict[str, Any], *, reason: str, owner: str | None, day: str | None) -> Any:
    return {
        "type": "view_submission",
        "team": {"id": "T0TEAM"},
        "user": {"id": REQUESTER},
        "view": {
            "id": "V0VIEW",
            "type": "modal",
            "callback_id": view["callback_id"],
            "private_metadata": view["private_metadata"],
            "state": {
                "values": {
                    ExceptionModal.REASON_BLOCK: {
                        ExceptionModal.REASON_INPUT: {"type": "plain_text_input", "value": reason}
                    },
                    ExceptionModal.OWNER_BLOCK: {
                        ExceptionModal.OWNER_INPUT: {"type": "users_select", "selected_user": owner}
                    },
                    ExceptionModal.EXPIRY_BLOCK: {
                        ExceptionModal.EXPIRY_INPUT: {"type": "datepicker", "selected_date": day}
                    },
                }
            },
        },
    }


async def exceptions_granted(bot: Bot) -> list[HostException]:
    async with read_only(bot.rig.db) as session:
        return list(await session.scalars(sa.select(HostException)))


async def test_an_operators_form_submission_creates_the_exception_and_its_ticket(
    bot: Bot, slack_api: SlackEmulator
) -> None:
    status, body = await bot.command("exception stg-01 --package openssl", user=REQUESTER)
    assert status == 200 and body == ""
    (opened,) = await slack_api.wait_for("views.open")
    assert opened.params["trigger_id"] == "1.2.3", "opened with the command's own trigger"
    view = opened.params["view"]
    assert view["callback_id"] == ExceptionModal.CALLBACK
    assert "package `openssl` on `stg-01`" in json.dumps(view["blocks"])

    status, body = await bot.interact(
        submission(view, reason="vendor hotfix pending", owner=OWNER, day="2026-01-20")
    )
    assert status == 200 and "errors" not in body
    (granted,) = await exceptions_granted(bot)
    assert (granted.host_name, granted.package, granted.owner, granted.created_by) == (
        "stg-01",
        "openssl",
        OWNER,
        REQUESTER,
    )
    assert granted.reason == "vendor hotfix pending"
    assert f"{granted.expires_at:%Y-%m-%d %H:%M:%S}" == "2026-01-20 23:59:59"
    async with read_only(bot.rig.db) as session:
        assert await session.scalar(sa.select(sa.func.count()).select_from(Ticket)) == 1
    (note,) = await slack_api.wait_for("chat.postEphemeral")
    assert note.params["user"] == REQUESTER and note.params["channel"] == "C0PATCHES"
    assert f"Exception #{granted.id} granted for stg-01 package `openssl`" in note.params["text"]


async def test_validation_errors_are_shown_in_the_form_and_nothing_is_written(
    bot: Bot, slack_api: SlackEmulator
) -> None:
    await bot.command("exception stg-02", user=REQUESTER)
    (opened,) = await slack_api.wait_for("views.open")
    view = opened.params["view"]

    _, body = await bot.interact(submission(view, reason="  ", owner=None, day=None))
    errors = json.loads(body)["errors"]
    assert json.loads(body)["response_action"] == "errors"
    assert set(errors) == {
        ExceptionModal.REASON_BLOCK,
        ExceptionModal.OWNER_BLOCK,
        ExceptionModal.EXPIRY_BLOCK,
    }
    _, body = await bot.interact(submission(view, reason="later", owner=OWNER, day="2026-06-30"))
    errors = json.loads(body)["errors"]
    assert "at most 30 days ahead" in errors[ExceptionModal.EXPIRY_BLOCK]
    _, body = await bot.interact(submission(view, reason="x", owner=OWNER, day="2025-12-01"))
    assert "must be in the future" in json.loads(body)["errors"][ExceptionModal.EXPIRY_BLOCK]
    assert await exceptions_granted(bot) == []


async def test_someone_who_is_not_an_operator_gets_no_form_and_the_refusal_is_audited(
    bot: Bot, slack_api: SlackEmulator
) -> None:
    status, body = await bot.command("exception stg-01", user=OUTSIDER)
    assert status == 200 and "is not an operator" in body and "ephemeral" in body
    _, body = await bot.command("exception", user=OUTSIDER)
    assert "a host is missing" in body and "Usage: `/patch exception HOST" in body
    assert not slack_api.called("views.open")
    async with read_only(bot.rig.db) as session:
        kinds = (await session.scalars(sa.select(Event.kind).where(Event.actor == OUTSIDER))).all()
    assert kinds == ["exception.refused"]


@pytest.mark.parametrize(
    ("words", "parsed"),
    [
        (["web-03"], ExceptionCommand("web-03", None, None)),
        (["web-03", "openssl"], ExceptionCommand("web-03", "openssl", None)),
        (["web-03", "cve-2026-0002"], ExceptionCommand("web-03", None, "CVE-2026-0002")),
        (["web-03", "--package", "openssl"], ExceptionCommand("web-03", "openssl", None)),
        (
            ["web-03", "openssl", "--cve", "CVE-2026-0002"],
            ExceptionCommand("web-03", "openssl", "CVE-2026-0002"),
        ),
    ],
)
def test_the_second_word_is_a_cve_when_it_looks_like_one_else_a_package(
    words: list[str], parsed: ExceptionCommand
) -> None:
    assert parse(words) == parsed


@pytest.mark.parametrize(
    ("words", "problem"),
    [
        (["web-03", "openssl", "bash"], "unexpected 'openssl bash'"),
        (["web-03", "--package", "a", "b"], "unexpected 'b'"),
        (["web-03", "--cve"], "a CVE id is missing after --cve"),
    ],
)
def test_a_malformed_exception_command_is_a_usage_error(words: list[str], problem: str) -> None:
    with pytest.raises(UsageError, match=problem):
        parse(words)


async def test_a_cve_exception_from_slack_holds_the_package_the_assessment_names(
    bot: Bot, slack_api: SlackEmulator
) -> None:
    async with unit_of_work(bot.rig.db) as session:
        await assessment.store(
            session,
            host="stg-01",
            findings=[
                assessment.Finding(
                    host="stg-01",
                    package="openssl",
                    current="3.0.11-1",
                    candidate="3.0.13-1",
                    advisories=("DSA-5555-1",),
                    cves=("CVE-2026-0002",),
                    severity="high",
                    cvss=None,
                    known_exploited=False,
                    published=None,
                    security=True,
                )
            ],
            at=bot.rig.clock.now(),
        )
    await bot.command("exception stg-01 CVE-2026-0002", user=REQUESTER)
    (opened,) = await slack_api.wait_for("views.open")
    view = opened.params["view"]
    assert "the package fixing CVE-2026-0002 on `stg-01`" in json.dumps(view["blocks"])
    _, body = await bot.interact(
        submission(view, reason="FIPS build first", owner=OWNER, day="2026-01-20")
    )
    assert "errors" not in body
    (granted,) = await exceptions_granted(bot)
    assert (granted.host_name, granted.package, granted.cve) == (
        "stg-01",
        "openssl",
        "CVE-2026-0002",
    )


async def test_a_cve_the_assessment_does_not_know_is_refused_in_the_form(
    bot: Bot, slack_api: SlackEmulator
) -> None:
    await bot.command("exception stg-02 CVE-2026-0009", user=REQUESTER)
    (opened,) = await slack_api.wait_for("views.open")
    _, body = await bot.interact(
        submission(opened.params["view"], reason="r", owner=OWNER, day="2026-01-20")
    )
    assert "lists no fix for CVE-2026-0009" in json.dumps(json.loads(body)["errors"])
    assert await exceptions_granted(bot) == []


async def test_with_plan_the_plans_maximum_project_and_channel_apply_as_on_the_cli(
    bot: Bot, slack_api: SlackEmulator
) -> None:
    from ruamel.yaml import YAML

    from tests.enginekit import plan_dict

    strict = plan_dict(
        name="strict",
        slack={"channel": "C0STRICT"},
        jira={"project": "SEC", "issue_type": "Bug", "max_exception_days": 5},
    )
    YAML().dump(strict, bot.deps.settings.plans_dir / "strict.yml")
    _, body = await bot.command("exception stg-01 --plan nosuch", user=REQUESTER)
    assert "no plan named 'nosuch'" in body
    assert not slack_api.called("views.open")

    await bot.command("exception stg-01 openssl --plan strict", user=REQUESTER)
    (opened,) = await slack_api.wait_for("views.open")
    view = opened.params["view"]
    assert "at most 5 days" in json.dumps(view["blocks"])
    _, body = await bot.interact(submission(view, reason="r", owner=OWNER, day="2026-01-12"))
    assert "at most 5 days ahead" in json.loads(body)["errors"][ExceptionModal.EXPIRY_BLOCK]
    _, body = await bot.interact(submission(view, reason="r", owner=OWNER, day="2026-01-08"))
    assert "errors" not in body
    (granted,) = await exceptions_granted(bot)
    assert (granted.package, granted.channel) == ("openssl", "C0STRICT")
    async with read_only(bot.rig.db) as session:
        (create,) = await session.scalars(sa.select(OutboxItem).where(OutboxItem.topic == "ticket"))
    assert (create.payload["project"], create.payload["issue_type"]) == ("SEC", "Bug")
