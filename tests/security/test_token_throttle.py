"""Token guessing is held back (bot.api._throttle): after 20 refused tokens from one
address within a minute, that address is answered 429 with Retry-After before any
database work, and the spell is audited once, not once per request.
"""

from __future__ import annotations

import json

import aiohttp

from bot.api._throttle import RefusalThrottle
from tests.enginekit import APPROVER_1
from tests.security import test_token_abuse as abuse
from tests.security.test_token_abuse import Site, events_after, mark

site = abuse.site  # the same served API on SQLite and PostgreSQL

FORGED = "pgt_0123456789ab_" + "B" * 43


async def test_an_address_guessing_tokens_is_held_back_and_audited_once(site: Site) -> None:
    start = await mark(site.db)
    for _ in range(20):
        status, body = await site.call("GET", "/whoami", token=FORGED)
        assert status == 401, body
    headers = {"Authorization": f"Bearer {FORGED}"}
    for _ in range(5):
        async with site.http.get(site.url + "/api/v1/whoami", headers=headers) as response:
            assert response.status == 429
            assert 1 <= int(response.headers["Retry-After"]) <= 60
            assert "too many refused tokens" in (await response.json())["error"]
    # A good token from the same address waits too: the brake is on the address.
    status, body = await site.as_user(APPROVER_1, "GET", "/whoami")
    assert status == 429, body

    kinds = [kind for kind, _, _ in await events_after(site.db, start)]
    assert kinds.count("token.refused") == 20
    assert kinds.count("api.throttled") == 1
    assert len(kinds) == 21  # nothing else was written for the 429s
    throttled = [
        data for kind, _, data in await events_after(site.db, start) if kind != "token.refused"
    ]
    assert throttled[0]["address"] == "127.0.0.1" and throttled[0]["refusals"] == 20


async def test_another_address_is_not_held_back(site: Site) -> None:
    for _ in range(20):
        assert (await site.call("GET", "/whoami", token=FORGED))[0] == 401
    assert (await site.call("GET", "/whoami", token=FORGED))[0] == 429
    connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
    async with aiohttp.ClientSession(connector=connector) as other:
        headers = {"Authorization": f"Bearer {site.tokens[APPROVER_1]}"}
        async with other.get(site.url + "/api/v1/whoami", headers=headers) as response:
            body = json.loads(await response.text())
            assert response.status == 200, body
            assert body["user"] == APPROVER_1


def test_the_hold_ends_when_the_oldest_refusal_leaves_the_window() -> None:
    now = [1000.0]
    throttle = RefusalThrottle(limit=3, window=60.0, monotonic=lambda: now[0])
    for _ in range(3):  # refused at t=1000, 1005, 1010
        assert throttle.retry_after("10.0.0.9") is None
        throttle.refused("10.0.0.9")
        now[0] += 5
    assert throttle.retry_after("10.0.0.9") == 45  # at t=1015; the first leaves at t=1060
    assert throttle.first_of_spell("10.0.0.9") and not throttle.first_of_spell("10.0.0.9")
    now[0] = 1060.0
    assert throttle.retry_after("10.0.0.9") is None  # two left in the window: below 3
    throttle.refused("10.0.0.9")
    assert throttle.retry_after("10.0.0.9") is not None
    assert throttle.first_of_spell("10.0.0.9")  # a new spell is audited again


def test_the_address_table_is_bounded() -> None:
    throttle = RefusalThrottle(limit=2, window=60.0, max_addresses=100)
    for n in range(1000):
        throttle.refused(f"10.1.{n // 250}.{n % 250}")
    assert len(throttle._refusals) == 100
    throttle.refused("10.9.9.9")
    throttle.refused("10.9.9.9")
    assert throttle.retry_after("10.9.9.9") is not None
    assert throttle.retry_after("10.1.0.0") is None  # forgotten first
