"""An async client of NinjaOne's public API v2 (aiohttp), OAuth2 client credentials.

The token comes from ``{url}/ws/oauth/token`` (a form POST, ``grant_type=
client_credentials`` with the client id, secret and scope), is cached until shortly
before ``expires_in`` and fetched once more when the API answers 401 (an expired or
revoked token). GETs are retried (transport errors, 429 with ``Retry-After``, 502-504);
a POST is retried only after a 429 (NinjaOne did not take it), never after a lost
answer. Two pagings: ``after`` (the last id of the previous page) for the device and
organisation lists, and the report cursor (``{cursor: {name}, results}``) of the queries.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import aiohttp
from pydantic import SecretStr

from integrations.backends.awx.client import parse_retry_after
from integrations.backends.ninjaone.errors import (
    NinjaOneAuthError,
    NinjaOneError,
    NinjaOneForbidden,
    NinjaOneNotFound,
    NinjaOneRejected,
    NinjaOneUnavailable,
)

log = logging.getLogger(__name__)

Params = Mapping[str, str | int | float]
_RETRY_STATUSES = frozenset({429, 502, 503, 504})
DEFAULT_SCOPE = "monitoring management"


class NinjaOneClient:
    def __init__(
        self,
        url: str,
        client_id: str,
        client_secret: SecretStr,
        *,
        scope: str = DEFAULT_SCOPE,
        timeout: float = 30.0,
        max_attempts: int = 4,
        max_retry_wait: float = 120.0,
        page_size: int = 500,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._base = url.rstrip("/")
        self._client_id = client_id
        self._secret = client_secret
        self._scope = scope
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._max_attempts = max(1, max_attempts)
        self._max_retry_wait = max_retry_wait
        self.page_size = page_size
        self._sleep = sleep
        self._session: aiohttp.ClientSession | None = None
        self._token: SecretStr | None = None
        self._expires = 0.0
        self._lock = asyncio.Lock()
        self.tokens_fetched = 0

    def __repr__(self) -> str:
        return f"NinjaOneClient({self._base}, client_id={self._client_id!r})"

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    # --- calls ------------------------------------------------------------------------------

    async def get(self, path: str, params: Params | None = None) -> Any:
        return await self._call("GET", path, params=params, idempotent=True)

    async def post(self, path: str, json: Mapping[str, Any] | None = None) -> Any:
        return await self._call("POST", path, json=json, idempotent=False)

    async def after_pages(
        self, path: str, params: Params | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """Every item of a list paged by ``after`` (the last ``id`` of the page before)."""
        after: int | None = None
        while True:
            query = {**(params or {}), "pageSize": self.page_size}
            if after is not None:
                query["after"] = after
            items = await self.get(path, query)
            if not isinstance(items, list):
                raise NinjaOneError(f"NinjaOne GET {path} answered {type(items).__name__}")
            for item in items:
                if not isinstance(item, dict):
                    raise NinjaOneError(f"NinjaOne GET {path} listed a {type(item).__name__}")
                yield item
            last = items[-1].get("id") if items else None
            if len(items) < self.page_size or not isinstance(last, int) or last == after:
                return
            after = last

    async def cursor_pages(
        self, path: str, params: Params | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """Every result of a query report, following its ``cursor``."""
        query: dict[str, str | int | float] = {**(params or {}), "pageSize": self.page_size}
        seen: set[str] = set()
        while True:
            report = await self.get(path, query)
            results = report.get("results") if isinstance(report, dict) else None
            if not isinstance(results, list):
                raise NinjaOneError(f"NinjaOne GET {path} is not a report with results")
            for item in results:
                if not isinstance(item, dict):
                    raise NinjaOneError(f"NinjaOne GET {path} listed a {type(item).__name__}")
                yield item
            cursor = report.get("cursor") if isinstance(report.get("cursor"), dict) else {}
            name = cursor.get("name")
            if len(results) < self.page_size or not isinstance(name, str) or not name:
                return
            if name in seen:
                raise NinjaOneError(f"NinjaOne GET {path} returned the cursor {name!r} twice")
            seen.add(name)
            query = {"cursor": name, "pageSize": self.page_size}

    # --- token ------------------------------------------------------------------------------

    async def _authorization(self, *, fresh: bool = False) -> str:
        async with self._lock:
            if fresh or self._token is None or time.monotonic() >= self._expires:
                await self._fetch_token()
            assert self._token is not None
            return f"Bearer {self._token.get_secret_value()}"

    async def _fetch_token(self) -> None:
        form = {
            "grant_type": "client_credentials",
            "client_id": self._client_id,
            "client_secret": self._secret.get_secret_value(),
            "scope": self._scope,
        }
        where = "NinjaOne POST /ws/oauth/token"
        try:
            async with self._http().post(f"{self._base}/ws/oauth/token", data=form) as resp:
                data = await _body(resp)
                status = resp.status
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise NinjaOneUnavailable(f"{where}: {type(exc).__name__}") from exc
        if status >= 500 or status == 429:
            raise NinjaOneUnavailable(f"{where} answered {status}", status=status)
        token = data.get("access_token") if isinstance(data, dict) else None
        if status >= 300 or not isinstance(token, str) or not token:
            detail = data.get("error") if isinstance(data, dict) else None
            raise NinjaOneAuthError(
                f"{where} answered {status}: {detail or 'no access_token'} (check"
                " PATCHGATE_NINJAONE_CLIENT_ID, _CLIENT_SECRET and the client's grant types)",
                status=status,
            )
        expires = data.get("expires_in")
        life = float(expires) if isinstance(expires, int | float) and expires > 0 else 3600.0
        self._token = SecretStr(token)
        self._expires = time.monotonic() + max(0.0, life - 60.0)
        self.tokens_fetched += 1

    # --- transport --------------------------------------------------------------------------

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        json: Mapping[str, Any] | None = None,
        idempotent: bool,
    ) -> Any:
        url = f"{self._base}/{path.lstrip('/')}"
        query = {k: str(v) for k, v in (params or {}).items()}
        refreshed = False
        attempt = 0
        while True:
            attempt += 1
            wait: float | None = None
            try:
                headers = {"Authorization": await self._authorization(fresh=refreshed)}
                async with self._http().request(
                    method, url, params=query, json=json, headers=headers, allow_redirects=False
                ) as resp:
                    status = resp.status
                    data = await _body(resp)
                    log.debug("NinjaOne %s %s -> %s", method, path, status)
                    if status < 300:
                        return data
                    if status == 401 and not refreshed:
                        refreshed = True  # an expired or revoked token: one fresh one
                        attempt -= 1
                        continue
                    if status not in _RETRY_STATUSES:
                        raise _translate(method, path, status, data)
                    wait = parse_retry_after(resp.headers.get("Retry-After"))
                    error: NinjaOneError = NinjaOneUnavailable(
                        _message(method, path, status, data), status=status, retry_after=wait
                    )
                    retryable = idempotent or status == 429
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                kind = "timed out" if isinstance(exc, TimeoutError) else type(exc).__name__
                error = NinjaOneUnavailable(f"NinjaOne {method} {path}: {kind}")
                error.__cause__ = exc
                retryable = idempotent
            refreshed = False
            if not retryable or attempt >= self._max_attempts:
                raise error
            if wait is None:
                wait = min(10.0, 0.5 * 2 ** (attempt - 1))
            elif wait > self._max_retry_wait:
                raise error
            log.info("NinjaOne %s %s: retrying in %.1fs (%s)", method, path, wait, error)
            await self._sleep(wait)


async def _body(resp: aiohttp.ClientResponse) -> Any:
    text = await resp.text()
    if not text:
        return None
    try:
        return await resp.json(content_type=None)
    except ValueError:
        return {"errorMessage": text[:500]}


def _message(method: str, path: str, status: int, data: Any) -> str:
    detail: Any = data
    if isinstance(data, dict):
        detail = (
            data.get("errorMessage")
            or data.get("message")
            or data.get("error_description")
            or data.get("error")
            or data
        )
        if data.get("incidentId"):
            detail = f"{detail} (incident {data['incidentId']})"
    return f"NinjaOne {method} {path} answered {status}: {detail if detail else '(no detail)'}"


def _translate(method: str, path: str, status: int, data: Any) -> NinjaOneError:
    message = _message(method, path, status, data)
    if status == 401:
        return NinjaOneAuthError(f"{message} (a fresh token was refused too)", status=status)
    if status == 403:
        return NinjaOneForbidden(
            f"{message} (check the scope: PATCHGATE_NINJAONE_SCOPE)", status=status
        )
    if status == 404:
        return NinjaOneNotFound(message, status=status)
    if status in (400, 409, 422):
        return NinjaOneRejected(message, status=status)
    if status >= 500:
        return NinjaOneUnavailable(message, status=status)
    return NinjaOneError(message, status=status)
