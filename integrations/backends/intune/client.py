"""An async Microsoft Graph client for the Intune backend (aiohttp).

Auth: OAuth2 client credentials against the Microsoft identity platform
(``POST {login}/{tenant}/oauth2/v2.0/token`` with ``scope=https://graph.microsoft.com/
.default``); the token is cached until shortly before ``expires_in`` and fetched once
more when Graph answers 401 (an expired or revoked token), then the call is tried again.

Paths are relative to the Graph root and name their version (``beta/admin/windows/
updates/...``, ``v1.0/deviceManagement/...``). Collections are read with :meth:`pages`,
which follows ``@odata.nextLink`` as Graph gives it (an absolute URL) until there is none.

Retries: a GET is retried on a transport error, a timeout, 429, 502, 503 and 504, at most
``max_attempts`` times, waiting what ``Retry-After`` says (Graph's throttling answer) or a
short backoff; a ``Retry-After`` beyond ``max_retry_wait`` is raised, not slept through.
A POST or PATCH is never retried blindly: the backend looks first whether it took effect.
Errors are Graph's ``{"error": {"code", "message", "innerError"}}`` translated into
:mod:`.errors`; the secret and the tokens never enter a message or a log line.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from pydantic import SecretStr

from integrations.backends.awx.client import parse_retry_after
from integrations.backends.intune.errors import (
    IntuneAuthError,
    IntuneError,
    IntuneForbidden,
    IntuneNotFound,
    IntuneRejected,
    IntuneUnavailable,
)

log = logging.getLogger(__name__)

GRAPH_URL = "https://graph.microsoft.com"
LOGIN_URL = "https://login.microsoftonline.com"
SCOPE = "https://graph.microsoft.com/.default"
_RETRY = frozenset({429, 502, 503, 504})


def _http_url(url: str, what: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{what} must be an http(s):// URL, got {url!r}")
    return url.rstrip("/")


class GraphClient:
    """One tenant, one app registration. Build it in the composition root; ``close()``."""

    def __init__(
        self,
        tenant_id: str,
        client_id: str,
        client_secret: SecretStr,
        *,
        graph_url: str = GRAPH_URL,
        login_url: str = LOGIN_URL,
        timeout: float = 30.0,
        max_attempts: int = 4,
        max_retry_wait: float = 120.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._graph = _http_url(graph_url, "the Graph URL")
        self._token_url = f"{_http_url(login_url, 'the login URL')}/{tenant_id}/oauth2/v2.0/token"
        self.tenant_id = tenant_id
        self.client_id = client_id
        self._secret = client_secret
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._max_attempts = max(1, max_attempts)
        self._max_retry_wait = max_retry_wait
        self._sleep = sleep
        self._session: aiohttp.ClientSession | None = None
        self._token: SecretStr | None = None
        self._expires = 0.0
        self._lock = asyncio.Lock()
        self.tokens_fetched = 0

    def __repr__(self) -> str:
        return f"GraphClient({self._graph}, tenant={self.tenant_id}, client={self.client_id})"

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    # --- the token ----------------------------------------------------------------------------

    async def _bearer(self, *, fresh: bool = False) -> str:
        async with self._lock:
            if fresh or self._token is None or time.monotonic() >= self._expires:
                await self._fetch_token()
            assert self._token is not None
            return f"Bearer {self._token.get_secret_value()}"

    async def _fetch_token(self) -> None:
        form = {
            "grant_type": "client_credentials",
            "client_id": self.client_id,
            "client_secret": self._secret.get_secret_value(),
            "scope": SCOPE,
        }
        where = f"the token request for tenant {self.tenant_id}"
        try:
            async with self._http().post(self._token_url, data=form) as resp:
                status, data = resp.status, await _body(resp)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            kind = "timed out" if isinstance(exc, TimeoutError) else type(exc).__name__
            raise IntuneUnavailable(f"Intune: {where}: {kind}") from exc
        body = data if isinstance(data, dict) else {}
        if status >= 300 or not isinstance(body.get("access_token"), str):
            said = ": ".join(str(body[k]) for k in ("error", "error_description") if body.get(k))
            said = said.replace(self._secret.get_secret_value() or "\0", "**********")
            message = f"Intune: {where} answered {status}: {said or 'no access_token'}"
            if status == 429 or status >= 500:
                raise IntuneUnavailable(message, status=status)
            raise IntuneAuthError(
                f"{message} (check PATCHGATE_INTUNE_TENANT_ID, _CLIENT_ID and _CLIENT_SECRET)",
                status=status,
                code=str(body.get("error") or "") or None,
            )
        try:
            lifetime = float(body.get("expires_in", 3599))
        except (TypeError, ValueError):
            lifetime = 3599.0
        self._token = SecretStr(body["access_token"])
        self._expires = time.monotonic() + max(0.0, lifetime - 120.0)
        self.tokens_fetched += 1

    # --- calls --------------------------------------------------------------------------------

    async def get(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        return await self._call("GET", path, params=params, idempotent=True)

    async def post(self, path: str, body: Mapping[str, Any]) -> Any:
        return await self._call("POST", path, json=body, idempotent=False)

    async def patch(self, path: str, body: Mapping[str, Any]) -> Any:
        return await self._call("PATCH", path, json=body, idempotent=False)

    async def pages(
        self, path: str, params: Mapping[str, str] | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """Every item of a Graph collection, following ``@odata.nextLink``."""
        url: str | None = path
        query: Mapping[str, str] | None = params
        seen: set[str] = set()
        while url is not None:
            data = await self._call("GET", url, params=query, idempotent=True)
            items = data.get("value") if isinstance(data, dict) else None
            if not isinstance(items, list):
                raise IntuneError(f"Intune: GET {path} answered no 'value' list")
            for item in items:
                if not isinstance(item, dict):
                    raise IntuneError(f"Intune: GET {path} listed a {type(item).__name__}")
                yield item
            link = data.get("@odata.nextLink")
            if link is not None and (not isinstance(link, str) or link in seen):
                raise IntuneError(f"Intune: GET {path}: an unusable @odata.nextLink {link!r}")
            if isinstance(link, str) and not link.startswith(self._graph + "/"):
                raise IntuneError(f"Intune: GET {path}: @odata.nextLink leaves {self._graph}")
            url, query = link, None
            if link is not None:
                seen.add(link)

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Mapping[str, Any] | None = None,
        idempotent: bool,
    ) -> Any:
        absolute = path.startswith(self._graph + "/")
        url = path if absolute else f"{self._graph}/{path.lstrip('/')}"
        shown = urlsplit(url).path
        attempts = self._max_attempts if idempotent else 1
        refreshed = False
        attempt = 0
        while True:
            attempt += 1
            wait: float | None = None
            headers = {"Authorization": await self._bearer(), "Accept": "application/json"}
            try:
                async with self._http().request(
                    method, url, params=params, json=json, headers=headers, allow_redirects=False
                ) as resp:
                    status, data = resp.status, await _body(resp)
                    log.debug("Graph %s %s -> %s", method, shown, status)
                    if status < 300:
                        return data
                    if status == 401 and not refreshed:
                        refreshed = True  # an expired or revoked token: one fresh one
                        await self._bearer(fresh=True)
                        attempt -= 1
                        continue
                    if status not in _RETRY:
                        raise _translate(method, shown, status, data)
                    wait = parse_retry_after(resp.headers.get("Retry-After"))
                    error: IntuneError = IntuneUnavailable(
                        _message(method, shown, status, data), status=status, retry_after=wait
                    )
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                kind = "timed out" if isinstance(exc, TimeoutError) else type(exc).__name__
                error = IntuneUnavailable(f"Intune: {method} {shown}: {kind}")
                error.__cause__ = exc
            if attempt >= attempts:
                raise error
            if wait is None:
                wait = min(10.0, 0.5 * 2 ** (attempt - 1))
            elif wait > self._max_retry_wait:
                raise error
            log.info("Graph %s %s: retrying in %.1fs (%s)", method, shown, wait, error)
            await self._sleep(wait)


async def _body(resp: aiohttp.ClientResponse) -> Any:
    text = await resp.text()
    if not text:
        return None
    try:
        return await resp.json(content_type=None)
    except ValueError:
        return {"error": {"message": text[:300]}}


def _message(method: str, path: str, status: int, data: Any) -> str:
    err = data.get("error") if isinstance(data, dict) else None
    if isinstance(err, dict):
        inner = err.get("innerError") if isinstance(err.get("innerError"), dict) else {}
        code, text = err.get("code") or "", err.get("message") or ""
        rid = inner.get("request-id") if isinstance(inner, dict) else None
        detail = f"{code}: {text}".strip(": ") + (f" (request-id {rid})" if rid else "")
    else:
        detail = str(data)[:300] if data else "(no detail)"
    return f"Intune: {method} {path} answered {status}: {detail}"


def _translate(method: str, path: str, status: int, data: Any) -> IntuneError:
    message = _message(method, path, status, data)
    err = data.get("error") if isinstance(data, dict) else None
    code = str(err.get("code")) if isinstance(err, dict) and err.get("code") else None
    kind: type[IntuneError] = IntuneError
    if status == 401:
        kind, message = IntuneAuthError, f"{message} (a fresh token was refused too)"
    elif status == 403:
        kind = IntuneForbidden
        message += " (the app needs WindowsUpdates.ReadWrite.All and"
        message += " DeviceManagementManagedDevices.Read.All)"
    elif status == 404:
        kind = IntuneNotFound
    elif status in (400, 409, 422):
        kind = IntuneRejected
    elif status >= 500:
        kind = IntuneUnavailable
    return kind(message, status=status, code=code)
