"""A submitted modal whose ``private_metadata`` PatchGate did not make (huge numbers,
not JSON, nested, another type), or whose inputs have shapes Slack never sends, gets a
clear answer in the form, never a 500; a metadata refusal is audited (issue 15, item 4)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bot.slack import texts
from bot.slack.approvals.ids import RejectModal
from bot.slack.exceptions.ids import ExceptionModal
from tests.enginekit import REQUESTER
from tests.slack.conftest import Bot
from tests.slack.test_exception_modal import submission
from tests.slack.test_hostile_requests import refusals, snapshot

METADATA: dict[str, Any] = {
    "a huge number": 10**30,
    "a huge number as text": str(10**30),
    "ids beyond any row": json.dumps(
        {"rollout_id": 10**30, "gate_id": 10**30, "patchset_hash": "x"}
    ),
    "a 4000-digit host": '{"host": ' + "9" * 4000 + "}",
    "not JSON": "x{",
    "nested": "[" * 150 + "]" * 150,
    "an object": {"host": "stg-01"},
    "a list": ["stg-01"],
    "a nested field": json.dumps({"host": "h", "plan": {"a": 1}}),
}


def rejection(metadata: Any, *, values: Any = None) -> dict[str, Any]:
    return {
        "type": "view_submission",
        "team": {"id": "T0TEAM"},
        "user": {"id": REQUESTER},
        "view": {
            "id": "V0VIEW",
            "type": "modal",
            "callback_id": RejectModal.CALLBACK.value,
            "private_metadata": metadata,
            "state": {
                "values": values
                if values is not None
                else {
                    RejectModal.REASON_BLOCK: {
                        RejectModal.REASON_INPUT: {"type": "plain_text_input", "value": "no"}
                    }
                }
            },
        },
    }


@pytest.mark.parametrize("case", list(METADATA))
async def test_exception_form_metadata_patchgate_did_not_make_is_refused_in_the_form(
    bot: Bot, case: str
) -> None:
    before = await snapshot(bot)
    view = {"callback_id": ExceptionModal.CALLBACK.value, "private_metadata": METADATA[case]}
    status, text = await bot.interact(
        submission(view, reason="r", owner="U0DBTEAM1", day="2026-12-31")
    )
    assert status == 200
    assert json.loads(text)["errors"] == {ExceptionModal.REASON_BLOCK: texts.STALE_EXCEPTION_FORM}
    assert await snapshot(bot) == before
    (event,) = await refusals(bot)
    assert event["reason"] == "bad_form_metadata" and event["actor"] == REQUESTER


@pytest.mark.parametrize("case", list(METADATA))
async def test_rejection_form_metadata_patchgate_did_not_make_is_refused_in_the_form(
    bot: Bot, case: str
) -> None:
    before = await snapshot(bot)
    status, text = await bot.interact(rejection(METADATA[case]))
    assert status == 200
    assert json.loads(text)["errors"] == {RejectModal.REASON_BLOCK: texts.STALE_FORM}
    assert await snapshot(bot) == before
    (event,) = await refusals(bot)
    assert event["reason"] == "bad_form_metadata"


@pytest.mark.parametrize(
    "values",
    [
        [],
        {RejectModal.REASON_BLOCK.value: "x"},
        {RejectModal.REASON_BLOCK.value: {RejectModal.REASON_INPUT.value: ["no"]}},
        {RejectModal.REASON_BLOCK.value: {RejectModal.REASON_INPUT.value: {"value": 10**30}}},
    ],
    ids=["list", "block is text", "input is a list", "value is a number"],
)
async def test_form_inputs_of_shapes_slack_never_sends_read_as_missing(
    bot: Bot, values: Any
) -> None:
    ref = json.dumps({"rollout_id": 1, "gate_id": 1, "patchset_hash": "x"})
    status, text = await bot.interact(rejection(ref, values=values))
    assert status == 200
    assert json.loads(text)["errors"] == {RejectModal.REASON_BLOCK: texts.REJECTION_NEEDS_REASON}
