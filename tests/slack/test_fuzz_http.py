"""Fuzzing /slack/events on the real HTTP server (issue 15, item 4): generated headers,
forms and payloads, signed and unsigned, JSON of random shapes with huge numbers, deep
nesting and odd encodings. Whatever arrives, the answer is never a 5xx, and every
refusal (a 4xx naming its reason) is in the audit log: unauthenticated reasons are
audited once a minute with a count, so the reason's event is there, not one per request.

The default run tries ``PATCHGATE_FUZZ_EXAMPLES`` examples (30); the ``slow`` one 600.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import urllib.parse
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.slack import texts
from bot.slack.approvals.ids import GateAction, RejectModal
from bot.slack.exceptions.ids import ExceptionModal
from bot.slack.journal import Journal
from tests.slack.conftest import Bot, signed_request
from tests.slack.test_hostile_input import signed_bytes
from tests.slack.test_hostile_requests import FORM, refusals

EXAMPLES = int(os.environ.get("PATCHGATE_FUZZ_EXAMPLES", "30"))

huge = st.one_of(
    st.integers(),
    st.integers(min_value=2**31 - 2, max_value=2**70),
    st.integers(min_value=-(2**70), max_value=-1),
    st.sampled_from([10**30, 2**63, 2**31, 0, -1]),
)
scalars = st.one_of(
    st.none(), st.booleans(), huge, st.floats(allow_nan=False), st.text(max_size=20)
)
shapes = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)
words = st.sampled_from(
    ["block_actions", "view_submission", "shortcut", "message", "event_callback", "user"]
)


@st.composite
def interaction(draw: st.DrawFn) -> dict[str, Any]:
    """A payload that looks like Slack's, with parts replaced by random shapes."""
    value = json.dumps(
        {
            "rollout_id": draw(huge),
            "gate_id": draw(huge),
            "patchset_hash": draw(st.text(max_size=64)),
        }
    )
    action = {
        "action_id": draw(st.sampled_from([a.value for a in GateAction] + ["x"])),
        "block_id": "gate_actions",
        "value": draw(st.one_of(st.just(value), shapes)),
        "type": "button",
    }
    payload: dict[str, Any] = {
        "type": draw(st.one_of(words, shapes)),
        "team": draw(st.one_of(st.just({"id": "T0TEAM"}), shapes)),
        "user": draw(st.one_of(st.just({"id": "U0APPROVER1"}), shapes)),
        "channel": {"id": "C0PATCHES"},
        "actions": draw(st.one_of(st.just([action]), shapes)),
        "trigger_id": "t",
        "action_ts": str(time.time_ns()),
    }
    extra = draw(st.dictionaries(st.text(max_size=8), shapes, max_size=3))
    return {**payload, **extra}


@st.composite
def submission(draw: st.DrawFn) -> dict[str, Any]:
    """A modal submission (rejection or exception form) with hostile private_metadata
    and inputs: random shapes, huge numbers, JSON text of random shapes, nesting."""
    metadata = draw(
        st.one_of(
            shapes,
            shapes.map(json.dumps),
            huge.map(str),
            st.integers(50, 400).map(lambda n: nested(n)),
            st.just(json.dumps({"host": "stg-01"})),
        )
    )
    return {
        "type": "view_submission",
        "team": {"id": "T0TEAM"},
        "user": draw(st.one_of(st.just({"id": "U0APPROVER1"}), shapes)),
        "view": {
            "id": "V0VIEW",
            "type": "modal",
            "callback_id": draw(st.sampled_from([RejectModal.CALLBACK, ExceptionModal.CALLBACK])),
            "private_metadata": metadata,
            "state": {"values": draw(shapes)},
        },
    }


def nested(depth: int, leaf: str = "1") -> str:
    return "[" * depth + leaf + "]" * depth


@st.composite
def bodies(draw: st.DrawFn) -> tuple[bytes, str]:
    """(body, content type)."""
    kinds = ["interaction", "modal", "shape", "deep", "command", "json", "bytes"]
    kind = draw(st.sampled_from(kinds))
    if kind == "interaction":
        text = json.dumps(draw(interaction()))
    elif kind == "modal":
        text = json.dumps(draw(submission()))
    elif kind == "shape":
        text = json.dumps(draw(shapes))
    elif kind == "deep":
        text = nested(draw(st.integers(min_value=50, max_value=20_000)))
    elif kind == "command":
        sub = draw(st.sampled_from(["status", "approve", "reject", "abort", "assess", "help"]))
        arg = draw(st.one_of(huge.map(str), st.text(max_size=30), st.just("--top 99999")))
        form = {"command": "/patch", "text": f"{sub} {arg}", "user_id": "U0REQUESTER"}
        form |= {"team_id": "T0TEAM", "channel_id": "C0PATCHES", "trigger_id": "1.2"}
        return urllib.parse.urlencode(form).encode(), FORM
    elif kind == "json":
        event = {"type": "event_callback", "event": draw(shapes), "team_id": "T0TEAM"}
        return json.dumps(draw(st.one_of(st.just(event), shapes))).encode(), draw(
            st.sampled_from(["application/json", FORM, "text/plain"])
        )
    else:
        return draw(st.binary(max_size=300)), draw(st.sampled_from([FORM, "application/json"]))
    encoding = draw(st.sampled_from(["utf-8", "utf-16", "latin-1"]))
    form = urllib.parse.urlencode({"payload": text}).encode()
    if encoding != "utf-8":
        form = form.decode().encode(encoding, errors="replace")
    return form, FORM


header_text = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
    max_size=500,
)


@st.composite
def headers_for(draw: st.DrawFn, body: bytes) -> dict[str, str]:
    how = draw(st.sampled_from(["signed", "signed", "none", "random", "stale", "long"]))
    if how == "signed":
        return signed_bytes(body)
    if how == "none":
        return {}
    if how == "stale":
        return signed_request(body.decode("latin-1"), timestamp=int(time.time()) - 400)
    if how == "long":
        return {"X-Slack-Request-Timestamp": "9" * draw(st.integers(17, 4000))} | {
            "X-Slack-Signature": "v0=" + "a" * 64
        }
    return {
        "X-Slack-Request-Timestamp": draw(header_text),
        "X-Slack-Signature": draw(header_text),
    }


async def post(
    bot: Bot, body: bytes, content_type: str, headers: dict[str, str]
) -> tuple[int, str]:
    hdrs = {"Content-Type": content_type, **headers}
    async with bot.session.post(bot.url, data=body, headers=hdrs) as resp:
        return resp.status, await resp.text()


async def fuzz_once(bot: Bot, data: st.DataObject, caplog: pytest.LogCaptureFixture) -> None:
    body, content_type = data.draw(bodies())
    headers = data.draw(headers_for(body))
    status, text = await post(bot, body, content_type, headers)
    await asyncio.gather(*list(Journal.tasks), return_exceptions=True)
    assert status < 500, (status, text, body[:200], headers)
    if status == 404 and json.loads(text) == {"error": "unhandled request"}:
        # authenticated, but nothing listens to it: Bolt's answer, and its warning
        assert "Unhandled request" in caplog.text
    elif status >= 400:
        reason = json.loads(text)["error"]
        audited = {e["reason"] for e in await refusals(bot)}
        assert reason in audited, (reason, audited)
    elif texts.STALE_FORM in text or texts.STALE_EXCEPTION_FORM in text:
        # a form refused in the form (200): audited all the same
        audited = {e["reason"] for e in await refusals(bot)}
        assert "bad_form_metadata" in audited, audited


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
async def test_no_request_is_ever_a_5xx_and_every_refusal_is_audited(
    bot: Bot, data: st.DataObject, caplog: pytest.LogCaptureFixture
) -> None:
    await fuzz_once(bot, data, caplog)


@pytest.mark.slow
@settings(
    max_examples=600,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
async def test_no_request_is_ever_a_5xx_at_length(
    bot: Bot, data: st.DataObject, caplog: pytest.LogCaptureFixture
) -> None:
    await fuzz_once(bot, data, caplog)
