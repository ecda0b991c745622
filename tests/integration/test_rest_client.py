"""The REST client base (integrations.backends.rest) over HTTP against a small scripted
server (tests/fakes/rest_server.py): retries with Retry-After, their bound, no retry of a
POST, the error tree, odd bodies, OAuth2 client credentials, paging, TLS, secrets."""

from __future__ import annotations

import email.utils
import logging
import ssl
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
import pytest_asyncio
from pydantic import SecretStr

from integrations.backends.rest import (
    BasicAuth,
    BearerToken,
    ErrorKinds,
    OAuth2ClientCredentials,
    RestClient,
    ToolAuthError,
    ToolError,
    ToolForbidden,
    ToolNotFound,
    ToolRejected,
    ToolUnavailable,
)
from tests.fakes.rest_server import CLIENT_ID, CLIENT_SECRET, RestServer
from workflows.errors import Forbidden, InputError, NotFound

TOKEN = "static-T0KEN-value"
PASSWORD = "Pa55-word-VALUE"


class DemoError(ToolError):
    pass


class DemoUnavailable(DemoError, ToolUnavailable):
    pass


class DemoAuthError(DemoError, ToolAuthError):
    pass


class DemoForbidden(DemoError, ToolForbidden):
    pass


class DemoNotFound(DemoError, ToolNotFound):
    pass


class DemoRejected(DemoError, ToolRejected):
    pass


class DemoClient(RestClient):
    """A tool as a new client writes it: a name, its errors, its error text, its hint."""

    tool: ClassVar[str] = "Demo"
    errors: ClassVar[ErrorKinds] = ErrorKinds(
        DemoError, DemoUnavailable, DemoAuthError, DemoForbidden, DemoNotFound, DemoRejected
    )
    auth_hint: ClassVar[str] = "check PATCHGATE_DEMO_CLIENT_ID and PATCHGATE_DEMO_SECRET"

    def error_detail(self, data: Any) -> str:  # Graph style: {"error": {"code", "message"}}
        error = data.get("error") if isinstance(data, dict) else None
        if isinstance(error, dict):
            return f"{error.get('code')}: {error.get('message')}"
        return super().error_detail(data)


class Sleeps(list[float]):
    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest_asyncio.fixture
async def server() -> AsyncIterator[RestServer]:
    srv = RestServer()
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


def demo(server: RestServer, sleeps: Sleeps, **kw: Any) -> DemoClient:
    kw.setdefault("auth", BearerToken(SecretStr(TOKEN)))
    return DemoClient(f"{server.origin}/api", sleep=sleeps, api_path="v1", **kw)


async def test_retry_after_in_seconds_and_as_an_http_date_is_waited(server: RestServer) -> None:
    server.answer(503, {"error": {"code": "busy", "message": "later"}}, **{"Retry-After": "2"})
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    server.answer(429, {}, **{"Retry-After": when})
    server.answer(200, {"value": 7})
    sleeps = Sleeps()
    client = demo(server, sleeps)
    try:
        assert await client.get("things", {"top": 5}) == {"value": 7}
    finally:
        await client.close()

    assert sleeps[0] == 2.0 and 28.0 <= sleeps[1] <= 30.0 and len(sleeps) == 2
    calls = server.api_calls()
    assert [c.path for c in calls] == ["/api/v1/things"] * 3 and calls[0].query == {"top": "5"}
    assert calls[0].headers["Authorization"] == f"Bearer {TOKEN}"


async def test_retries_are_bounded_and_back_off_without_retry_after(server: RestServer) -> None:
    for _ in range(5):
        server.answer(502, "<html>bad gateway</html>")
    sleeps = Sleeps()
    client = demo(server, sleeps, max_attempts=3)
    with pytest.raises(DemoUnavailable) as raised:
        await client.get("things")
    await client.close()

    assert len(server.api_calls()) == 3 and sleeps == [0.5, 1.0]
    assert raised.value.status == 502 and "bad gateway" in str(raised.value)


async def test_a_retry_after_beyond_the_limit_is_raised_not_slept(server: RestServer) -> None:
    server.answer(429, {}, **{"Retry-After": "3600"})
    sleeps = Sleeps()
    client = demo(server, sleeps, max_retry_wait=60)
    with pytest.raises(ToolUnavailable) as raised:
        await client.get("things")
    await client.close()

    assert raised.value.retry_after == 3600.0 and sleeps == [] and len(server.api_calls()) == 1


async def test_a_post_that_starts_a_job_is_never_retried(server: RestServer) -> None:
    server.answer(503, {}, **{"Retry-After": "1"})
    sleeps = Sleeps()
    client = demo(server, sleeps)
    with pytest.raises(DemoUnavailable):
        await client.request("POST", "jobs", json={"run": 1}, idempotent=False)
    await client.close()

    assert len(server.api_calls()) == 1 and sleeps == []
    assert server.api_calls()[0].body == '{"run": 1}'


async def test_a_transport_error_is_retried_then_raised_as_unavailable() -> None:
    sleeps = Sleeps()
    client = DemoClient("http://127.0.0.1:9/api", None, sleep=sleeps, max_attempts=2)
    with pytest.raises(DemoUnavailable, match=r"Demo GET /api/x: Client\w+Error"):
        await client.get("x")
    await client.close()
    assert sleeps == [0.5]


@pytest.mark.parametrize(
    ("status", "mine", "generic", "port"),
    [
        (400, DemoRejected, ToolRejected, InputError),
        (409, DemoRejected, ToolRejected, InputError),
        (422, DemoRejected, ToolRejected, InputError),
        (401, DemoAuthError, ToolAuthError, ToolError),
        (403, DemoForbidden, ToolForbidden, Forbidden),
        (404, DemoNotFound, ToolNotFound, NotFound),
        (500, DemoUnavailable, ToolUnavailable, ToolError),
        (418, DemoError, ToolError, ToolError),
    ],
)
async def test_each_status_raises_its_kind_with_the_tools_message(
    server: RestServer, status: int, mine: type, generic: type, port: type
) -> None:
    server.answer(status, {"error": {"code": "Oops", "message": "the tool's words"}})
    client = demo(server, Sleeps())
    with pytest.raises(mine) as raised:
        await client.get("things/1")
    await client.close()

    error = raised.value
    assert isinstance(error, generic) and isinstance(error, port) and error.status == status
    assert str(error).startswith(f"Demo GET /api/v1/things/1 answered {status}: Oops: the tool")
    assert ("PATCHGATE_DEMO_CLIENT_ID" in str(error)) == (status == 401)
    if status in (400, 409, 422):
        assert error.fields == {"error": {"code": "Oops", "message": "the tool's words"}}


async def test_odd_bodies_never_crash_the_client(server: RestServer) -> None:
    server.answer(200, "<html>maintenance</html>")
    server.answer(200, [1, 2])
    server.answer(204, "")
    server.answer(200, [3])
    server.answer(500, "Traceback (most recent call last)")
    client = demo(server, Sleeps(), max_attempts=1)
    assert await client.get("a") == {"message": "<html>maintenance</html>"}
    assert await client.get("b") == {"results": [1, 2]}
    assert await client.get("c") == {}
    type(client).objects_only = False
    try:
        assert await client.get("d") == [3]
    finally:
        type(client).objects_only = True
    with pytest.raises(DemoUnavailable, match="Traceback"):
        await client.get("e")
    await client.close()


async def test_an_oauth2_token_is_fetched_once_and_renewed_before_it_expires(
    server: RestServer,
) -> None:
    now = [1000.0]
    auth = OAuth2ClientCredentials(
        f"{server.origin}/oauth2/token",
        CLIENT_ID,
        SecretStr(CLIENT_SECRET),
        scope="https://graph.example/.default",
        clock=lambda: now[0],
    )
    server.expires_in = 600
    client = demo(server, Sleeps(), auth=auth)
    await client.get("a")
    await client.get("b")
    now[0] += 600 - 60 - 1
    await client.get("c")
    assert server.tokens == ["tok-1"] and auth.fetched == 1
    now[0] += 2  # within the minute before expires_in: renewed ahead
    await client.get("d")
    await client.close()

    assert server.tokens == ["tok-1", "tok-2"]
    assert server.forms[0] == {
        "grant_type": "client_credentials",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "scope": "https://graph.example/.default",
    }
    token_call = next(s for s in server.seen if s.path == "/oauth2/token")
    assert token_call.headers["Content-Type"] == "application/x-www-form-urlencoded"
    auths = [c.headers["Authorization"] for c in server.api_calls()]
    assert auths == ["Bearer tok-1"] * 3 + ["Bearer tok-2"]


async def test_a_401_invalidates_the_token_and_retries_once_with_a_new_one(
    server: RestServer,
) -> None:
    auth = OAuth2ClientCredentials(
        f"{server.origin}/oauth2/token", CLIENT_ID, SecretStr(CLIENT_SECRET), audience="api"
    )
    client = demo(server, Sleeps(), auth=auth)
    await client.get("a")
    server.tokens.append("rotated-elsewhere")  # the server now takes only a newer token
    server.bearer_only = True
    assert await client.get("b") == {"ok": True}
    assert [c.headers["Authorization"] for c in server.api_calls()] == [
        "Bearer tok-1",
        "Bearer tok-1",
        "Bearer tok-3",
    ]
    assert server.forms[-1]["audience"] == "api"

    server.bearer_only = False  # a 401 again after the refresh: raised, not looped
    server.answer(401, {"error": {"code": "InvalidAuthenticationToken", "message": "no"}})
    server.answer(401, {"error": {"code": "InvalidAuthenticationToken", "message": "no"}})
    before, fetched = len(server.api_calls()), auth.fetched
    with pytest.raises(DemoAuthError, match="PATCHGATE_DEMO_CLIENT_ID"):
        await client.get("c")
    await client.close()
    assert len(server.api_calls()) - before == 2 and auth.fetched == fetched + 1


async def test_a_token_endpoint_error_is_an_auth_error_without_the_secret(
    server: RestServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server.token_error = (
        401,
        {"error": "invalid_client", "error_description": f"bad secret {CLIENT_SECRET}"},
    )
    auth = OAuth2ClientCredentials(
        f"{server.origin}/oauth2/token", CLIENT_ID, SecretStr(CLIENT_SECRET)
    )
    client = demo(server, Sleeps(), auth=auth)
    with pytest.raises(DemoAuthError) as raised:
        await client.get("a")
    await client.close()

    error = raised.value
    assert isinstance(error, ToolAuthError) and error.status == 401
    assert "invalid_client: bad secret" in str(error) and server.api_calls() == []
    shown = [str(error), repr(error), repr(client), repr(auth), caplog.text, str(error.fields)]
    assert not any(CLIENT_SECRET in s for s in shown)


async def test_a_token_endpoint_that_is_down_is_retried_as_unavailable(
    server: RestServer,
) -> None:
    server.token_error = (503, {})
    auth = OAuth2ClientCredentials(
        f"{server.origin}/oauth2/token", CLIENT_ID, SecretStr(CLIENT_SECRET)
    )
    sleeps = Sleeps()
    client = demo(server, sleeps, auth=auth, max_attempts=2)
    with pytest.raises(DemoUnavailable, match=r"token request .* answered 503"):
        await client.get("a")
    await client.close()
    assert len(server.forms) == 2 and sleeps == [0.5] and server.api_calls() == []


async def test_secrets_stay_out_of_reprs_messages_and_logs(
    server: RestServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    basic = BasicAuth("svc-patchgate", SecretStr(PASSWORD))
    server.answer(401, {"message": "no"})
    server.answer(503, {"message": "busy"})
    client = demo(server, Sleeps(), auth=basic, max_attempts=2)
    with pytest.raises(DemoAuthError) as raised:
        await client.get("a")
    await client.get("b")
    await client.close()

    assert server.api_calls()[0].headers["Authorization"].startswith("Basic ")
    texts = [repr(client), repr(basic), repr(BearerToken(SecretStr(TOKEN))), caplog.text]
    texts += [str(raised.value), repr(raised.value)]
    assert not any(PASSWORD in t or TOKEN in t for t in texts)
    assert "retrying in 0.5s" in caplog.text


async def test_next_links_are_followed_and_must_stay_on_the_server(server: RestServer) -> None:
    server.answer(200, {"value": [1, 2], "@odata.nextLink": f"{server.origin}/api/v1/d?skip=2"})
    server.answer(200, {"value": [3]})
    client = demo(server, Sleeps())
    got = [i async for i in client.follow_next("d", items="value", next_key="@odata.nextLink")]
    assert got == [1, 2, 3] and server.api_calls()[1].query == {"skip": "2"}

    server.answer(200, {"value": [1], "@odata.nextLink": "https://evil.example/api/v1/d"})
    with pytest.raises(DemoError, match="another server"):
        [i async for i in client.follow_next("d", items="value", next_key="@odata.nextLink")]
    server.answer(200, {"items": []})
    with pytest.raises(DemoError, match="without value"):
        [i async for i in client.follow_next("d", items="value")]
    await client.close()


def test_the_url_is_checked_when_the_client_is_built() -> None:
    with pytest.raises(ValueError, match=r"Demo URL must be http\(s\)://"):
        DemoClient("graph.example.com", None)
    assert DemoClient("https://h.example/x/", None, api_path="/v1.0/").api_root == (
        "https://h.example/x/v1.0/"
    )


@pytest.fixture
def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subject = ["-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"]
    files = ["-keyout", str(key), "-out", str(cert)]
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", *subject, *files],
        check=True,
        capture_output=True,
    )
    return cert, key


async def test_tls_is_verified_against_a_ca_file(self_signed: tuple[Path, Path]) -> None:
    cert, key = self_signed
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    srv = RestServer(context)
    await srv.start()
    try:
        for kw, ok in (({}, False), ({"ca_file": cert}, True), ({"verify_tls": False}, True)):
            client = DemoClient(srv.origin + "/api", None, max_attempts=1, **kw)
            try:
                if ok:
                    assert await client.get("t") == {"ok": True}
                else:
                    with pytest.raises(DemoUnavailable, match="Certificate"):
                        await client.get("t")
            finally:
                await client.close()
    finally:
        await srv.stop()
