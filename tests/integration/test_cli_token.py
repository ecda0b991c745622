"""``patchgate token create|list|revoke`` (the administrator's maintenance commands, run
with the database credentials) on real SQLite and PostgreSQL, in-process."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from bot.cli.main import main
from tests.dbutil import BACKENDS, audit_key_env, fresh_database_url
from workflows.db import create_database, read_only
from workflows.models import ApiToken, Event

TOKEN = re.compile(r"^pgt_[0-9a-f]{12}_[A-Za-z0-9_-]{43}$")
NOW = "2026-12-07T10:00:00+00:00"


@pytest.fixture(params=BACKENDS)
def site(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    with fresh_database_url(request.param, tmp_path) as url:
        (tmp_path / "clock").write_text(NOW)
        monkeypatch.setenv("PATCHGATE_DATABASE_URL", url)
        monkeypatch.setenv("PATCHGATE_TEST_CLOCK_FILE", str(tmp_path / "clock"))
        monkeypatch.setenv("LOGNAME", "carol")
        for name, value in audit_key_env(url).items():
            monkeypatch.setenv(name, value)
        monkeypatch.chdir(tmp_path)
        assert main(["db", "upgrade"]) == 0
        yield url


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def rows(url: str, query: Any) -> list[Any]:
    async def go() -> list[Any]:
        db = create_database(url)
        try:
            async with read_only(db) as session:
                return list(await session.scalars(query))
        finally:
            await db.dispose()

    return asyncio.run(go())


def test_create_shows_the_token_once_and_stores_only_its_hash(
    site: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "token", "create", "--user", "U0ALICE01", "--label", "laptop")
    assert code == 0, err
    token, note = out.splitlines()
    assert TOKEN.fullmatch(token), token
    public_id = token[4:16]
    assert note.startswith(f"token {public_id} for U0ALICE01, expires 2027-03-07 10:00Z.")

    (row,) = rows(site, sa.select(ApiToken))
    assert row.secret_hash == hashlib.sha256(token.encode()).hexdigest()
    assert (row.public_id, row.user_id, row.label, row.created_by) == (
        public_id,
        "U0ALICE01",
        "laptop",
        "admin:carol",
    )
    (event,) = rows(site, sa.select(Event))
    assert event.kind == "token.created" and event.actor == "admin:carol"
    assert json.loads(event.body)["data"]["token_id"] == public_id
    assert token.split("_", 2)[2] not in event.body  # the secret is never audited

    code, out, _ = run(capsys, "token", "list", "--json")
    (listed,) = json.loads(out)
    assert (listed["id"], listed["state"], listed["last_used_at"]) == (public_id, "active", None)
    assert token not in out and "secret" not in out
    code, out, _ = run(capsys, "token", "list")
    assert out.startswith(f"{public_id}  U0ALICE01    active ") and out.rstrip().endswith("laptop")


def test_revoke_marks_the_token_revoked_audited_and_only_once(
    site: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "token", "create", "--user", "U0ALICE01", "--expires", "7d")
    public_id = out.splitlines()[0][4:16]
    code, out, err = run(capsys, "token", "revoke", public_id)
    assert (code, out.strip()) == (
        0,
        f"token {public_id} of U0ALICE01 revoked; it is refused from now on",
    )
    listed = json.loads(run(capsys, "token", "list", "--json")[1])
    assert (listed[0]["state"], listed[0]["revoked_by"]) == ("revoked", "admin:carol")
    assert [e.kind for e in rows(site, sa.select(Event).order_by(Event.id))] == [
        "token.created",
        "token.revoked",
    ]
    code, _, err = run(capsys, "token", "revoke", public_id)
    assert code == 1 and err.startswith(f"patchgate: token {public_id} was revoked already")
    code, _, err = run(capsys, "token", "revoke", "0123456789ab")
    assert (code, err.strip()) == (
        1,
        "patchgate: no token '0123456789ab' (see `patchgate token list`)",
    )


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (("--user", "alice"), "--user 'alice' is not a Slack user ID (U… or W…)"),
        (("--user", "S0GROUP01"), "is not a Slack user ID"),
        (("--user", "U0ALICE01", "--expires", "2026-12-01"), "would be expired already"),
        (("--user", "U0ALICE01", "--expires", "400d"), "a token lives at most 366 days"),
        (("--user", "U0ALICE01", "--expires", "soon"), "--expires 'soon' is not Nd"),
        (("--user", "U0ALICE01", "--label", "a\x1b[2Jb"), "--label must be printable text"),
    ],
)
def test_bad_requests_are_one_line_and_issue_nothing(
    site: str, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], says: str
) -> None:
    code, out, err = run(capsys, "token", "create", *argv)
    assert code == 1 and out == "" and err.count("\n") == 1 and says in err, err
    assert rows(site, sa.select(ApiToken)) == [] and rows(site, sa.select(Event)) == []


def test_a_bad_server_url_is_a_settings_line_and_an_unreachable_server_one_clear_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATCHGATE_TOKEN", "pgt_0123456789ab_" + "A" * 43)
    monkeypatch.setenv("PATCHGATE_SERVER_URL", "ftp://patchgate.example")
    code, _, err = run(capsys, "rollout", "abort", "1")
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("patchgate: PATCHGATE_SERVER_URL: 'ftp://patchgate.example' is not")
    monkeypatch.setenv("PATCHGATE_SERVER_URL", "http://127.0.0.1:9")  # nothing listens there
    code, _, err = run(capsys, "rollout", "abort", "1")
    assert code == 1 and err.count("\n") == 1
    assert err.startswith("patchgate: cannot reach patchgate serve at http://127.0.0.1:9 (")
    assert "pgt_" not in err  # the token is never echoed
