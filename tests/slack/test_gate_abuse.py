"""Gate abuse through every face (issue 9, item 3, the authorisation half): a click from
outside the approvers, the requester approving their own rollout, one person voting twice
toward a quorum of 2, decisions on an expired or already-decided gate, a rejection
without a reason.

Each runs through the real app over HTTP (signed requests) and, where the CLI can do the
same, through ``patchgate`` as a real process deciding through ``serve``'s API
(``bot.api``, on the same database, clock and Slack directory) with the person's own
token. Each must be refused with the right answer, audited as ``gate.refused`` with the
actor and the reason, and change nothing: every table a decision could touch is
snapshotted before and after (only the audit log, the replay guard's signatures and the
token's "last used" may change; ephemeral answers are Web API calls, not outbox rows).
The token path's own abuse cases (revoked, expired, forged tokens, the client's
environment) are in ``tests/security/test_token_abuse.py``.

(``tests/slack/test_hostile_requests.py`` covers the unauthenticated and malformed
requests and tampered button values.)
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from ruamel.yaml import YAML

from bot.slack.approvals.ids import GateAction, RejectModal
from tests.apikit import api_deps, api_server, client_env, issue_token_async, run_cli_async
from tests.enginekit import APPROVER_1, APPROVER_2, OUTSIDER, REQUESTER, plan_dict
from tests.fakes.slack_api import SlackEmulator
from tests.slack.conftest import Bot
from workflows.db import read_only
from workflows.models import Base, Event, Gate

REPO = Path(__file__).resolve().parents[2]
# Only the audit log and the replay guard's record of signatures may change on a refusal.
GROWS_ON_REFUSAL = frozenset(
    {"events", "audit_head", "audit_checkpoints", "slack_seen_signatures", "api_tokens"}
)


# --- the rollout under attack ------------------------------------------------------------------


def quorum_plan(bot: Bot) -> None:
    """dev (no gate), then staging behind a quorum-2 gate the requester is listed on."""
    plan = plan_dict()
    plan["rings"] = [
        plan["rings"][0],
        {
            "name": "staging",
            "hosts": "group:staging",
            "batch": "50%",
            "gate": {
                "type": "approval",
                "quorum": 2,
                "approvers": {"users": [APPROVER_1, APPROVER_2, REQUESTER]},
                "timeout": "4h",
            },
        },
    ]
    YAML().dump(plan, bot.deps.settings.plans_dir / "weekly.yml")


@dataclass
class Target:
    rollout_id: int
    gate_id: int
    approve_value: str
    reject_value: str
    patchset_hash: str


def _buttons(message: dict[str, Any]) -> dict[str, str]:
    for block in message["blocks"]:
        if block["type"] == "actions":
            return {e["action_id"]: e["value"] for e in block["elements"]}
    return {}


async def reach_the_gate(bot: Bot, slack_api: SlackEmulator) -> Target:
    quorum_plan(bot)
    status, body = await bot.command("run weekly", user=REQUESTER)
    assert status == 200 and "Rollout #" in body, body
    await bot.rig.engine().run_until_idle()
    await bot.deliver()
    (message,) = [m for m in slack_api.posted("C0PATCHES") if _buttons(m)]
    values = _buttons(message)
    ref = json.loads(values[GateAction.APPROVE])
    return Target(
        ref["rollout_id"],
        ref["gate_id"],
        values[GateAction.APPROVE],
        values[GateAction.REJECT],
        ref["patchset_hash"],
    )


# --- what changed, and what was said ----------------------------------------------------------


async def snapshot(bot: Bot) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table a decision could touch (all but the audit log)."""
    async with read_only(bot.rig.db) as session:
        return {
            table.name: sorted(
                (tuple(row) for row in await session.execute(sa.select(table))), key=repr
            )
            for table in Base.metadata.sorted_tables
            if table.name not in GROWS_ON_REFUSAL
        }


async def audit_mark(bot: Bot) -> int:
    async with read_only(bot.rig.db) as session:
        mark = await session.scalar(sa.select(sa.func.coalesce(sa.func.max(Event.id), 0)))
    return int(mark or 0)


async def events_since(bot: Bot, mark: int) -> list[tuple[str, str | None, dict[str, Any]]]:
    async with read_only(bot.rig.db) as session:
        rows = await session.scalars(sa.select(Event).where(Event.id > mark).order_by(Event.id))
        return [(e.kind, e.actor, json.loads(e.body)["data"]) for e in rows]


async def gate_row(bot: Bot, gate_id: int) -> Gate:
    async with read_only(bot.rig.db) as session:
        gate = await session.get(Gate, gate_id)
    assert gate is not None
    return gate


@dataclass
class Answer:
    """What one attempt produced: the words shown to the person, and an exit code (CLI)."""

    text: str
    exit_code: int | None = None


class Faces:
    """The three ways to decide, each returning what the person was told.

    The one place that knows where a Slack answer is read from: a slash command's reply
    and a modal's validation error come back in the HTTP response; a click is acked empty
    and answered with ``chat.postEphemeral`` (read from the emulator's record). If clicks
    come to be answered differently, only ``click`` changes."""

    def __init__(self, bot: Bot, slack_api: SlackEmulator, tmp_path: Path, api_url: str) -> None:
        self.bot, self.slack_api = bot, slack_api
        self.tmp_path, self.api_url = tmp_path, api_url
        self.tokens: dict[str, str] = {}

    async def issue_tokens(self, *users: str) -> None:
        deps = self.bot.deps
        for user in users:
            self.tokens[user] = await issue_token_async(deps.db, user, now=deps.clock.now())

    async def click(self, action: GateAction, value: str, *, user: str) -> Answer:
        seen = len(self.slack_api.called("chat.postEphemeral"))
        status, body = await self.bot.click(action, value, user=user)
        assert status == 200, body
        calls = await self.slack_api.wait_for("chat.postEphemeral", seen + 1)
        (said,) = [c.params for c in calls[seen:]]
        assert said["user"] == user and said["channel"] == "C0PATCHES"
        return Answer(str(said["text"]))

    async def command(self, text: str, *, user: str) -> Answer:
        status, body = await self.bot.command(text, user=user)
        assert status == 200, body
        reply = json.loads(body)
        assert reply.get("response_type") == "ephemeral", reply
        return Answer(str(reply["text"]))

    async def submit_rejection(self, reject_value: str, reason: str, *, user: str) -> Answer:
        """The reject modal submitted (opened from the button, whose value it carries)."""
        status, body = await self.bot.interact(
            {
                "type": "view_submission",
                "team": {"id": "T0TEAM"},
                "user": {"id": user},
                "view": {
                    "id": "V0VIEW",
                    "type": "modal",
                    "callback_id": RejectModal.CALLBACK.value,
                    "private_metadata": reject_value,
                    "state": {
                        "values": {
                            RejectModal.REASON_BLOCK: {
                                RejectModal.REASON_INPUT: {
                                    "type": "plain_text_input",
                                    "value": reason,
                                }
                            }
                        }
                    },
                },
            }
        )
        assert status == 200, body
        if not body:
            return Answer("")  # accepted: the modal closes
        reply = json.loads(body)
        assert reply["response_action"] == "errors", reply
        return Answer(str(reply["errors"][RejectModal.REASON_BLOCK]))

    async def cli(self, *args: str, user: str) -> Answer:
        """``patchgate`` as a real process, deciding through serve's API with ``user``'s
        token (the API runs on this test's loop, database, clock and Slack directory)."""
        code, out, err = await run_cli_async(
            client_env(self.api_url, self.tokens[user]), *args, cwd=self.tmp_path
        )
        return Answer((out + err).strip(), code)

    # one verb, three paths -------------------------------------------------------------------

    async def approve(self, path: str, target: Target, *, user: str) -> Answer:
        if path == "button":
            return await self.click(GateAction.APPROVE, target.approve_value, user=user)
        if path == "slash":
            return await self.command(
                f"approve {target.rollout_id} {target.patchset_hash[:12]}", user=user
            )
        assert path == "cli"
        return await self.cli(
            "rollout", "approve", str(target.rollout_id), "--hash", target.patchset_hash[:12],
            user=user,
        )  # fmt: skip

    async def reject(self, path: str, target: Target, reason: str, *, user: str) -> Answer:
        if path == "modal":
            return await self.submit_rejection(target.reject_value, reason, user=user)
        if path == "slash":
            return await self.command(f"reject {target.rollout_id} {reason}", user=user)
        assert path == "cli"
        return await self.cli(
            "rollout", "reject", str(target.rollout_id), "--reason", reason, user=user
        )


SOURCE = {"button": "slack", "slash": "slack", "modal": "slack", "cli": "api"}


@pytest.fixture
async def faces(bot: Bot, slack_api: SlackEmulator, tmp_path: Path) -> AsyncIterator[Faces]:
    deps = bot.deps
    served = api_deps(deps.settings, deps.db, clock=deps.clock, directory=deps.directory)
    async with api_server(served) as url:
        made = Faces(bot, slack_api, tmp_path, url)
        await made.issue_tokens(APPROVER_1, APPROVER_2, REQUESTER, OUTSIDER)
        yield made


def assert_refused(answer: Answer, path: str, says: str) -> None:
    assert says in answer.text, answer
    if path == "cli":
        assert answer.exit_code == 1, answer
        assert answer.text.startswith("patchgate: ") and "\n" not in answer.text, answer
    else:
        assert answer.exit_code is None
        if path != "modal":
            assert answer.text.startswith(":no_entry:"), answer


async def assert_refusal_audited(
    bot: Bot, mark: int, *, actor: str, says: str, path: str, gate_id: int | None
) -> None:
    """Exactly one new audit event: the refusal, naming who and why (and nothing else);
    through the API, after the token's use (its id, the same actor)."""
    events = await events_since(bot, mark)
    if path == "cli":
        (kind, who, data), *events = events
        assert (kind, who, sorted(data)) == ("token.used", actor, ["route", "token_id"]), data
    assert len(events) == 1, events
    ((kind, who, data),) = events
    assert (kind, who) == ("gate.refused", actor), events
    assert says in data["reason"], data
    assert data["source"] == SOURCE[path], data
    assert data["gate_id"] == gate_id, data


async def refused_and_unchanged(
    bot: Bot, attempt: Any, *, path: str, actor: str, says: str, gate_id: int | None
) -> Answer:
    """Run ``attempt`` and check the three things every refusal must do."""
    before, mark = await snapshot(bot), await audit_mark(bot)
    answer: Answer = await attempt
    assert_refused(answer, path, says)
    await assert_refusal_audited(bot, mark, actor=actor, says=says, path=path, gate_id=gate_id)
    assert await snapshot(bot) == before, "a refusal changed state"
    return answer


# --- who may decide ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["button", "slash", "cli"])
async def test_an_approval_from_outside_the_approvers_is_refused_audited_and_changes_nothing(
    bot: Bot, slack_api: SlackEmulator, faces: Faces, path: str
) -> None:
    target = await reach_the_gate(bot, slack_api)
    await refused_and_unchanged(
        bot,
        faces.approve(path, target, user=OUTSIDER),
        path=path,
        actor=OUTSIDER,
        says=f"{OUTSIDER} is not an approver for ring 'staging'",
        gate_id=target.gate_id,
    )


@pytest.mark.parametrize("path", ["modal", "slash", "cli"])
async def test_a_rejection_from_outside_the_approvers_is_refused_too(
    bot: Bot, slack_api: SlackEmulator, faces: Faces, path: str
) -> None:
    target = await reach_the_gate(bot, slack_api)
    await refused_and_unchanged(
        bot,
        faces.reject(path, target, "I do not like it", user=OUTSIDER),
        path=path,
        actor=OUTSIDER,
        says="is not an approver",
        gate_id=target.gate_id,
    )


@pytest.mark.parametrize("path", ["button", "slash", "cli"])
async def test_the_requester_approving_their_own_rollout_is_refused_on_every_path(
    bot: Bot, slack_api: SlackEmulator, faces: Faces, path: str
) -> None:
    target = await reach_the_gate(bot, slack_api)
    await refused_and_unchanged(
        bot,
        faces.approve(path, target, user=REQUESTER),
        path=path,
        actor=REQUESTER,
        says="the rollout's requester may not approve it",
        gate_id=target.gate_id,
    )
    gate = await gate_row(bot, target.gate_id)
    assert gate.state == "open"


# --- one person, one vote ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "second"),
    [("button", "button"), ("button", "slash"), ("slash", "cli"), ("cli", "button")],
)
async def test_a_second_approval_by_the_same_person_never_counts_toward_a_quorum_of_two(
    bot: Bot, slack_api: SlackEmulator, faces: Faces, first: str, second: str
) -> None:
    target = await reach_the_gate(bot, slack_api)
    accepted = await faces.approve(first, target, user=APPROVER_1)
    assert "(1/2); waiting for more approvals" in accepted.text, accepted
    assert accepted.exit_code in (None, 0)

    await refused_and_unchanged(
        bot,
        faces.approve(second, target, user=APPROVER_1),
        path=second,
        actor=APPROVER_1,
        says=f"{APPROVER_1} has already voted on gate {target.gate_id}",
        gate_id=target.gate_id,
    )
    # Still one vote short: the engine does not move the rollout on.
    await bot.rig.engine().run_until_idle()
    gate = await gate_row(bot, target.gate_id)
    assert gate.state == "open"
    assert (await bot.rig.ring_states(target.rollout_id))["staging"] == "pending"

    # A second person completes the quorum: the first vote counted exactly once.
    done = await faces.approve("button", target, user=APPROVER_2)
    assert "approved (2/2)" in done.text, done


async def test_the_same_person_approving_on_two_paths_at_once_is_counted_once(
    bot: Bot, slack_api: SlackEmulator, faces: Faces
) -> None:
    target = await reach_the_gate(bot, slack_api)
    answers = await asyncio.gather(
        faces.approve("button", target, user=APPROVER_1),
        faces.approve("slash", target, user=APPROVER_1),
        faces.approve("cli", target, user=APPROVER_1),
    )
    accepted = [a for a in answers if "waiting for more approvals" in a.text]
    refused = [a for a in answers if "has already voted" in a.text]
    assert (len(accepted), len(refused)) == (1, 2), answers
    events = await events_since(bot, 0)
    assert [k for k, *_ in events].count("gate.vote") == 1
    assert [k for k, *_ in events].count("gate.refused") == 2
    gate = await gate_row(bot, target.gate_id)
    assert gate.state == "open"


# --- gates that can no longer be decided --------------------------------------------------------


async def expire(bot: Bot, target: Target, *, tick: bool) -> None:
    """Move past the gate's timeout; with ``tick`` the engine also closes it as expired."""
    gate = await gate_row(bot, target.gate_id)
    assert gate.expires_at is not None
    expires_at = (
        gate.expires_at if gate.expires_at.tzinfo else gate.expires_at.replace(tzinfo=dt.UTC)
    )
    bot.rig.clock.set(expires_at + dt.timedelta(seconds=1))
    if tick:
        await bot.rig.engine().run_until_idle()
        assert (await gate_row(bot, target.gate_id)).state == "expired"


@pytest.mark.parametrize(
    ("verb", "path"),
    [
        ("approve", "button"),
        ("approve", "slash"),
        ("approve", "cli"),
        ("reject", "modal"),
        ("reject", "slash"),
        ("reject", "cli"),
    ],
)
async def test_a_decision_on_a_gate_past_its_timeout_is_refused_before_the_engine_closes_it(
    bot: Bot, slack_api: SlackEmulator, faces: Faces, verb: str, path: str
) -> None:
    target = await reach_the_gate(bot, slack_api)
    await expire(bot, target, tick=False)
    attempt = (
        faces.approve(path, target, user=APPROVER_1)
        if verb == "approve"
        else faces.reject(path, target, "too late anyway", user=APPROVER_1)
    )
    await refused_and_unchanged(
        bot,
        attempt,
        path=path,
        actor=APPROVER_1,
        says=f"gate {target.gate_id} has expired",
        gate_id=target.gate_id,
    )


async def approved(bot: Bot, faces: Faces, target: Target) -> None:
    await faces.approve("button", target, user=APPROVER_1)
    done = await faces.approve("button", target, user=APPROVER_2)
    assert "approved (2/2)" in done.text


@pytest.mark.parametrize(
    ("verb", "path", "closed_by"),
    [
        ("approve", "button", "expired"),
        ("reject", "modal", "expired"),
        ("approve", "button", "approved"),
        ("reject", "modal", "approved"),
        ("approve", "button", "rejected"),
        ("reject", "modal", "rejected"),
    ],
)
async def test_a_decision_on_a_closed_gate_it_names_is_refused_audited_and_changes_nothing(
    bot: Bot, slack_api: SlackEmulator, faces: Faces, verb: str, path: str, closed_by: str
) -> None:
    """The button and the reject modal name the gate: a late click on an old message."""
    target = await reach_the_gate(bot, slack_api)
    if closed_by == "expired":
        await expire(bot, target, tick=True)
    elif closed_by == "approved":
        await approved(bot, faces, target)
    else:
        said = await faces.reject("slash", target, "kernel regression", user=APPROVER_2)
        assert "rejected by" in said.text, said
    # APPROVER_1 has not voted on the rejected gate; on the approved one they have, but the
    # closed gate is what is refused first.
    attempt = (
        faces.approve(path, target, user=APPROVER_1)
        if verb == "approve"
        else faces.reject(path, target, "changed my mind", user=APPROVER_1)
    )
    await refused_and_unchanged(
        bot,
        attempt,
        path=path,
        actor=APPROVER_1,
        says=f"gate {target.gate_id} is already {closed_by}; nothing changed",
        gate_id=target.gate_id,
    )


@pytest.mark.parametrize(
    ("verb", "path"),
    [("approve", "slash"), ("approve", "cli"), ("reject", "slash"), ("reject", "cli")],
)
@pytest.mark.parametrize("closed_by", ["expired", "approved"])
async def test_a_decision_by_rollout_number_when_no_gate_is_open_is_refused_and_audited(
    bot: Bot, slack_api: SlackEmulator, faces: Faces, verb: str, path: str, closed_by: str
) -> None:
    """The slash command and the CLI name a rollout: its gate is closed, none is open."""
    target = await reach_the_gate(bot, slack_api)
    if closed_by == "expired":
        await expire(bot, target, tick=True)
    else:
        await approved(bot, faces, target)
    attempt = (
        faces.approve(path, target, user=APPROVER_1)
        if verb == "approve"
        else faces.reject(path, target, "changed my mind", user=APPROVER_1)
    )
    await refused_and_unchanged(
        bot,
        attempt,
        path=path,
        actor=APPROVER_1,
        says="has no open gate",
        gate_id=None,
    )


# --- a rejection needs a reason -----------------------------------------------------------------


@pytest.mark.parametrize("text", ["reject {n}", "reject {n}   "])
async def test_a_rejection_without_a_reason_on_the_slash_command_is_refused_and_audited(
    bot: Bot, slack_api: SlackEmulator, faces: Faces, text: str
) -> None:
    target = await reach_the_gate(bot, slack_api)
    answer = await refused_and_unchanged(
        bot,
        faces.command(text.format(n=target.rollout_id), user=APPROVER_1),
        path="slash",
        actor=APPROVER_1,
        says="a rejection needs a reason",
        gate_id=target.gate_id,
    )
    assert "/patch reject ROLLOUT REASON" in answer.text, "the usage is shown"


async def test_a_blank_reason_in_the_modal_or_the_cli_is_refused_and_changes_nothing(
    bot: Bot, slack_api: SlackEmulator, faces: Faces
) -> None:
    """Input errors before any decision (the modal's validation, the CLI's argument check):
    refused with a clear message, nothing written, not even an audit event."""
    target = await reach_the_gate(bot, slack_api)
    before, mark = await snapshot(bot), await audit_mark(bot)
    modal = await faces.submit_rejection(target.reject_value, "  ", user=APPROVER_1)
    assert modal.text == "A rejection needs a reason."
    cli = await faces.cli(
        "rollout", "reject", str(target.rollout_id), "--reason", " ", user=APPROVER_1
    )
    assert (cli.exit_code, cli.text) == (1, "patchgate: --reason must not be empty")
    assert await snapshot(bot) == before
    assert await events_since(bot, mark) == []
