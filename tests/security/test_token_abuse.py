"""Gate abuse through the token path (issue 15, item 1): ``serve``'s decisions API with
personal tokens, on real SQLite and PostgreSQL, through ``bot.server.build_web_app`` (the
route registration ``serve`` uses) and, where the client's environment is the attack,
``patchgate`` as a real process.

Refused: a non-approver's token, the requester's own token (self-approval), a revoked,
an expired, a forged or an unknown token, a token whose user left the approver group in
Slack, and a CLI whose environment names itself operator, admin or someone else
(PATCHGATE_OPERATORS, PATCHGATE_ADMINS, PATCHGATE_CLI_IDENTITIES) or carries the database
credentials: the server's settings alone say who may do what. Every refusal is audited
and changes nothing; bad input is a 4xx, never a 5xx. The happy path: an operator's
token starts the rollout, two approvers' tokens take it through its gates.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
import sqlalchemy as sa
from aiohttp import web
from ruamel.yaml import YAML

from bot.api import Api
from bot.metrics import Metrics
from bot.server import ServerDeps, build_web_app
from bot.settings import Settings
from bot.slack.deps import CandidateGroups
from integrations.slack import SlackDirectory, make_client
from tests.apikit import api_deps, client_env, issue_token_async, run_cli_async
from tests.enginekit import APPROVER_1, APPROVER_2, OUTSIDER, REQUESTER, Rig, plan_dict
from tests.fakes.slack_api import SlackEmulator, slack_emulator
from workflows import tokens
from workflows.db import Database, read_only, unit_of_work
from workflows.models import ApiToken, Base, Event, Gate

SLACK_TOKEN = "xoxb-test-token"
CAB_GROUP, CAB_MEMBER = "S0CAB", "U0CABBY"
# Only the audit log and the token's "last used" may change on a refusal.
GROWS_ON_REFUSAL = frozenset({"events", "audit_head", "audit_checkpoints", "api_tokens"})


def token_plan() -> dict[str, Any]:
    """dev, then staging (quorum 1: the approvers, the requester, the CAB user group),
    then prod (quorum 2)."""
    plan = plan_dict()
    staging = plan["rings"][1]["gate"]
    staging["approvers"] = {"users": [APPROVER_1, APPROVER_2, REQUESTER], "groups": [CAB_GROUP]}
    return plan


class Leading:
    is_leader = True
    epoch = 1
    refusal = None


@dataclass
class Site:
    url: str
    rig: Rig
    db: Database
    slack: SlackEmulator
    http: aiohttp.ClientSession
    tokens: dict[str, str]

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | None = None,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, Any]]:
        sent = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        data = raw if raw is not None else json.dumps(body or {}).encode()
        async with self.http.request(
            method, self.url + "/api/v1" + path, data=data, headers=sent
        ) as response:
            assert response.content_type == "application/json", await response.text()
            return response.status, await response.json()

    async def as_user(self, user: str, method: str, path: str, body: Any = None) -> Any:
        return await self.call(method, path, body, token=self.tokens[user])

    async def gate(self, rollout_id: int) -> Gate:
        gate = await self.rig.open_gate(rollout_id)
        assert gate is not None
        return gate


@pytest_asyncio.fixture
async def site(db: Database, tmp_path: Path) -> AsyncIterator[Site]:
    plans = tmp_path / "plans"
    plans.mkdir()
    YAML().dump(token_plan(), plans / "weekly.yml")
    rig = Rig(db)
    async with slack_emulator(token=SLACK_TOKEN) as slack:
        slack.usergroups[CAB_GROUP] = [CAB_MEMBER]
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            plans_dir=plans,
            operators=REQUESTER,
            admins=REQUESTER,
            slack_bot_token=SLACK_TOKEN,
            slack_api_url=slack.url,
        )
        client = make_client(token=SLACK_TOKEN, base_url=slack.url, timeout=1)
        directory = SlackDirectory(client, CandidateGroups(settings, db), ttl=0)
        deps = api_deps(settings, db, clock=rig.clock, directory=directory)
        app = build_web_app(
            ServerDeps(db=db, leadership=Leading(), metrics=Metrics(), api=Api(deps))
        )
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        issued = {
            user: await issue_token_async(db, user, now=rig.clock.now())
            for user in (REQUESTER, APPROVER_1, APPROVER_2, OUTSIDER, CAB_MEMBER)
        }
        try:
            async with aiohttp.ClientSession() as http:
                url = f"http://127.0.0.1:{runner.addresses[0][1]}"
                yield Site(url, rig, db, slack, http, issued)
        finally:
            await runner.cleanup()


async def at_the_staging_gate(site: Site) -> tuple[int, Gate]:
    status, body = await site.as_user(REQUESTER, "POST", "/rollouts", {"plan": "weekly"})
    assert status == 201, body
    rollout_id = int(body["rollout_id"])
    await site.rig.engine().run_until_idle()
    return rollout_id, await site.gate(rollout_id)


async def snapshot(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    async with read_only(db) as session:
        return {
            table.name: sorted(
                (tuple(row) for row in await session.execute(sa.select(table))), key=repr
            )
            for table in Base.metadata.sorted_tables
            if table.name not in GROWS_ON_REFUSAL
        }


async def events_after(db: Database, mark: int) -> list[tuple[str, str | None, dict[str, Any]]]:
    async with read_only(db) as session:
        rows = await session.scalars(sa.select(Event).where(Event.id > mark).order_by(Event.id))
        return [(e.kind, e.actor, json.loads(e.body)["data"]) for e in rows]


async def mark(db: Database) -> int:
    async with read_only(db) as session:
        return int(await session.scalar(sa.select(sa.func.coalesce(sa.func.max(Event.id), 0))))


def public_id(token: str) -> str:
    found = tokens.public_id_of(token)
    assert found is not None
    return found


# --- the happy path ------------------------------------------------------------------------------


async def test_an_operators_token_starts_and_two_approvers_tokens_take_the_rollout_through(
    site: Site,
) -> None:
    rollout_id, staging = await at_the_staging_gate(site)
    status, body = await site.as_user(
        APPROVER_1, "POST", f"/rollouts/{rollout_id}/approve", {"hash": staging.patchset_hash[:12]}
    )
    assert (status, body["gate_state"]) == (200, "approved"), body
    await site.rig.engine().run_until_idle()
    prod = await site.gate(rollout_id)
    assert prod.id != staging.id and prod.quorum == 2
    shown = {"hash": prod.patchset_hash[:12]}
    first = await site.as_user(APPROVER_1, "POST", f"/rollouts/{rollout_id}/approve", shown)
    assert first[0] == 200 and "waiting for more approvals" in first[1]["message"], first
    second = await site.as_user(APPROVER_2, "POST", f"/rollouts/{rollout_id}/approve", shown)
    assert second[0] == 200 and "approved (2/2)" in second[1]["message"], second
    await site.rig.engine().run_until_idle()
    assert (await site.rig.rollout(rollout_id)).state == "succeeded"

    events = await events_after(site.db, 0)
    votes = [(who, data["source"]) for kind, who, data in events if kind == "gate.vote"]
    assert votes == [(APPROVER_1, "api"), (APPROVER_1, "api"), (APPROVER_2, "api")]
    used = [(who, data["token_id"]) for kind, who, data in events if kind == "token.used"]
    assert used == [
        (REQUESTER, public_id(site.tokens[REQUESTER])),
        (APPROVER_1, public_id(site.tokens[APPROVER_1])),
        (APPROVER_1, public_id(site.tokens[APPROVER_1])),
        (APPROVER_2, public_id(site.tokens[APPROVER_2])),
    ]
    async with read_only(site.db) as session:
        rows = list(await session.scalars(sa.select(ApiToken)))
        everything = json.dumps(
            [list(map(str, r)) for t in Base.metadata.sorted_tables
             for r in await session.execute(sa.select(t))]
        )  # fmt: skip
    assert all(
        row.last_used_at is not None for row in rows if row.user_id not in (OUTSIDER, CAB_MEMBER)
    )
    for token in site.tokens.values():  # the secret is nowhere: not in a row, not in the audit
        assert token.split("_", 2)[2] not in everything


# --- who may decide ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("user", "says"),
    [
        (OUTSIDER, f"{OUTSIDER} is not an approver for ring 'staging'"),
        (REQUESTER, "the rollout's requester may not approve it"),
    ],
    ids=["non-approver", "requester"],
)
async def test_an_approval_by_a_token_whose_user_may_not_approve_is_refused_and_audited(
    site: Site, user: str, says: str
) -> None:
    rollout_id, gate = await at_the_staging_gate(site)
    before, start = await snapshot(site.db), await mark(site.db)
    status, body = await site.as_user(
        user, "POST", f"/rollouts/{rollout_id}/approve", {"hash": gate.patchset_hash}
    )
    assert (status, body) == (403, {"error": says})
    events = await events_after(site.db, start)
    assert [(k, who) for k, who, _ in events] == [("token.used", user), ("gate.refused", user)]
    assert events[1][2] == {"gate_id": gate.id, "reason": says, "source": "api"}
    assert await snapshot(site.db) == before


async def test_an_operator_request_by_a_non_operators_token_is_refused_and_audited(
    site: Site,
) -> None:
    rollout_id, _ = await at_the_staging_gate(site)
    before, start = await snapshot(site.db), await mark(site.db)
    status, body = await site.as_user(APPROVER_1, "POST", f"/rollouts/{rollout_id}/abort", {})
    assert status == 403 and "is not an operator" in body["error"], body
    assert [k for k, *_ in await events_after(site.db, start)] == [
        "token.used",
        "request.refused",
    ]
    assert await snapshot(site.db) == before


async def test_a_token_whose_user_left_the_approver_group_in_slack_is_refused(
    site: Site,
) -> None:
    rollout_id, gate = await at_the_staging_gate(site)
    status, body = await site.as_user(CAB_MEMBER, "GET", "/whoami")
    assert (status, body["groups"]) == (200, [CAB_GROUP]), body
    site.slack.usergroups[CAB_GROUP] = []  # removed from the CAB group in Slack
    before = await snapshot(site.db)
    status, body = await site.as_user(
        CAB_MEMBER, "POST", f"/rollouts/{rollout_id}/approve", {"hash": gate.patchset_hash}
    )
    assert (status, body) == (403, {"error": f"{CAB_MEMBER} is not an approver for ring 'staging'"})
    assert await snapshot(site.db) == before


# --- tokens that are not (or no longer) good -------------------------------------------------


async def refused_401(site: Site, token: str | None, says: str, **extra: Any) -> dict[str, Any]:
    """A request with ``token`` is answered 401 naming why, audited as ``token.refused``
    (no actor), and changes nothing else."""
    rollout_id, gate = await at_the_staging_gate(site)
    before, start = await snapshot(site.db), await mark(site.db)
    status, body = await site.call(
        "POST",
        f"/rollouts/{rollout_id}/approve",
        {"hash": gate.patchset_hash},
        token=token,
        **extra,
    )
    assert (status, body) == (401, {"error": says})
    ((kind, who, data),) = await events_after(site.db, start)
    assert (kind, who, data["reason"]) == ("token.refused", None, says)
    assert data["route"] == "POST /api/v1/rollouts/{rollout_id}/approve"
    assert await snapshot(site.db) == before
    assert (await site.gate(rollout_id)).state == "open"
    return data


async def test_a_revoked_token_is_refused(site: Site) -> None:
    token = site.tokens[APPROVER_1]
    async with unit_of_work(site.db) as session:
        await tokens.revoke(
            session, public_id=public_id(token), by="admin:test", now=site.rig.clock.now()
        )
    data = await refused_401(site, token, f"token {public_id(token)} is revoked")
    assert data["token_id"] == public_id(token)


async def test_an_expired_token_is_refused(site: Site) -> None:
    token = await issue_token_async(
        site.db, APPROVER_1, now=site.rig.clock.now(), lifetime=dt.timedelta(minutes=30)
    )
    site.rig.clock.advance(dt.timedelta(hours=1))
    await refused_401(site, token, f"token {public_id(token)} is expired")


async def test_a_forged_token_with_a_real_id_is_refused(site: Site) -> None:
    real = site.tokens[APPROVER_1]
    forged = real[:-43] + "A" * 43
    data = await refused_401(site, forged, "unknown token")
    assert data["token_id"] == public_id(real)


@pytest.mark.parametrize(
    ("token", "says"),
    [
        ("pgt_0123456789ab_" + "B" * 43, "unknown token"),
        ("xoxb-not-ours", "not a PatchGate token"),
        ("pgt_" + "a" * 5000, "not a PatchGate token"),
        (None, "no token (send Authorization: Bearer <token>)"),
    ],
    ids=["unknown", "malformed", "huge", "missing"],
)
async def test_an_unknown_malformed_or_missing_token_is_refused(
    site: Site, token: str | None, says: str
) -> None:
    await refused_401(site, token, says)


async def test_basic_auth_with_a_valid_token_is_not_a_bearer_token(site: Site) -> None:
    await refused_401(
        site,
        None,
        "no token (send Authorization: Bearer <token>)",
        headers={"Authorization": f"Basic {site.tokens[APPROVER_1]}"},
    )


# --- the client's environment counts for nothing -----------------------------------------------


async def test_the_clis_environment_gives_no_power(site: Site, tmp_path: Path) -> None:
    """An outsider's CLI naming itself operator, admin and an approver (and holding the
    database URL) is refused by the server; without a token it cannot decide at all."""
    rollout_id, gate = await at_the_staging_gate(site)
    before = await snapshot(site.db)
    database_url = str(site.db.engine.url.render_as_string(hide_password=False))
    claims = {
        "PATCHGATE_OPERATORS": OUTSIDER,
        "PATCHGATE_ADMINS": OUTSIDER,
        "PATCHGATE_CLI_IDENTITIES": f"{os.environ.get('USER', 'root')}={APPROVER_1}",
        "PATCHGATE_DATABASE_URL": database_url.replace("+aiosqlite", "").replace("+psycopg", ""),
        "LOGNAME": APPROVER_1,
        "USER": APPROVER_1,
    }
    env = client_env(site.url, site.tokens[OUTSIDER], **claims)
    approve = ("rollout", "approve", str(rollout_id), "--hash", gate.patchset_hash[:12])
    code, out, err = await run_cli_async(env, *approve, cwd=tmp_path)
    assert (code, err.strip()) == (
        1,
        f"patchgate: {OUTSIDER} is not an approver for ring 'staging'",
    ), out
    code, out, err = await run_cli_async(env, "rollout", "pause", str(rollout_id), cwd=tmp_path)
    assert code == 1 and f"{OUTSIDER} is not an operator" in err, (out, err)

    del env["PATCHGATE_TOKEN"]  # the database credentials alone decide nothing
    code, out, err = await run_cli_async(env, *approve, cwd=tmp_path)
    assert code == 2 and err.count("\n") == 1, (out, err)
    assert "PATCHGATE_SERVER_URL and PATCHGATE_TOKEN are required" in err
    assert await snapshot(site.db) == before
    assert (await site.gate(rollout_id)).state == "open"


# --- bad input is a 4xx, never a 5xx ----------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "raw", "status", "says"),
    [
        ("/rollouts", b"[1, 2]", 400, "the body must be a JSON object"),
        ("/rollouts", b"{", 400, "the body is not JSON (UTF-8)"),
        ("/rollouts", b"\xff\xfe{}", 400, "the body is not JSON (UTF-8)"),
        ("/rollouts", b"[" * 100_000, 413, "the body is larger than 16384 bytes"),
        ("/rollouts", b"[" * 16_000, 400, "the body is not JSON (UTF-8)"),
        ("/rollouts", b'{"plan": 1}', 400, "plan: Input should be a valid string"),
        (
            "/rollouts",
            b'{"plan": "weekly", "as": "U0X"}',
            400,
            "as: Extra inputs are not permitted",
        ),
        ("/rollouts", b'{"plan": "nightly"}', 404, "no plan named 'nightly'"),
        ("/rollouts/99999999999999/approve", b'{"hash": "x"}', 404, "rollout 99999999999999 does"),
        ("/rollouts/12/approve", b"{}", 400, "hash: Field required"),
        ("/exceptions/99999999999999/revoke", b"{}", 404, "exception 99999999999999 does not"),
        ("/rollouts/-1/approve", b"{}", 404, "no API route POST /api/v1/rollouts/-1/approve"),
    ],
)
async def test_bad_input_through_the_api_is_a_4xx_with_a_json_error(
    site: Site, path: str, raw: bytes, status: int, says: str
) -> None:
    before, start = await snapshot(site.db), await mark(site.db)
    answer = await site.call("POST", path, token=site.tokens[REQUESTER], raw=raw)
    assert answer[0] == status and says in answer[1]["error"], answer
    assert await snapshot(site.db) == before
    if status in (400, 413):  # refused before any rule ran: audited as such
        *_, (kind, who, data) = await events_after(site.db, start)
        assert (kind, who, data["status"]) == ("api.refused", REQUESTER, status), data
        assert data["token_id"] == public_id(site.tokens[REQUESTER]) and says in data["reason"]
