"""An async client for the Automox console API (aiohttp).

``https://console.automox.com/api``; ``Authorization: Bearer <API key>``; the
organization as the ``o`` query parameter on every call; a timeout per call; list
endpoints paged with ``page`` (from 0) and ``limit`` (at most 500), a short page being
the last. Errors translated into :mod:`.errors`.

Retries: a GET is retried on a transport error, a timeout, 429, 502, 503 and 504, at most
``max_attempts`` times, waiting what ``Retry-After`` says (seconds or an HTTP date) or a
short backoff; a ``Retry-After`` beyond ``max_retry_wait`` is raised, not slept through.
A POST (a device command) is never retried here: the backend looks at the device's
queue before queuing again.

The key lives in a ``SecretStr`` and goes only into the request header.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from pydantic import SecretStr

from integrations.backends.automox.errors import (
    AutomoxAuthError,
    AutomoxError,
    AutomoxForbidden,
    AutomoxNotFound,
    AutomoxRejected,
    AutomoxUnavailable,
)
from integrations.backends.awx.client import parse_retry_after

log = logging.getLogger(__name__)

MAX_LIMIT = 500  # the documented maximum of ``limit``
_RETRY_STATUSES = frozenset({429, 502, 503, 504})
Params = Mapping[str, str | int]


class AutomoxClient:
    """One organization, one API key. Build it in the composition root; ``close()`` at exit."""

    def __init__(
        self,
        api_key: SecretStr,
        org_id: int,
        *,
        url: str = "https://console.automox.com/api",
        timeout: float = 30.0,
        max_attempts: int = 4,
        max_retry_wait: float = 60.0,
        page_limit: int = MAX_LIMIT,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"Automox API URL must be http(s)://host/api, got {url!r}")
        self._base = url.rstrip("/")
        self._key = api_key
        self.org_id = org_id
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._max_attempts = max(1, max_attempts)
        self._max_retry_wait = max_retry_wait
        self._limit = max(1, min(MAX_LIMIT, page_limit))
        self._sleep = sleep
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"AutomoxClient({self._base}, o={self.org_id})"

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=self._timeout, headers={"Accept": "application/json"}
            )
        return self._session

    async def get(self, path: str, params: Params | None = None) -> Any:
        return await self._call("GET", path, params=params, idempotent=True)

    async def post(self, path: str, body: Mapping[str, Any]) -> Any:
        return await self._call("POST", path, json=body, idempotent=False)

    async def pages(self, path: str, params: Params | None = None) -> AsyncIterator[dict[str, Any]]:
        """Every item of a list endpoint, page by page (``page`` from 0, ``limit``)."""
        page = 0
        while True:
            query: dict[str, str | int] = {**(params or {}), "page": page, "limit": self._limit}
            items = await self.get(path, query)
            if isinstance(items, dict) and isinstance(items.get("data"), list):
                items = items["data"]
            if not isinstance(items, list):
                raise AutomoxError(
                    f"Automox GET {path} answered {type(items).__name__}, not a list"
                )
            for item in items:
                if not isinstance(item, dict):
                    raise AutomoxError(f"Automox GET {path} listed a {type(item).__name__}")
                yield item
            if len(items) < self._limit:
                return
            page += 1

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
        query = {"o": str(self.org_id), **{k: str(v) for k, v in (params or {}).items()}}
        attempts = self._max_attempts if idempotent else 1
        headers = {"Authorization": f"Bearer {self._key.get_secret_value()}"}
        for attempt in range(1, attempts + 1):
            wait: float | None = None
            try:
                async with self._http().request(
                    method, url, params=query, json=json, headers=headers, allow_redirects=False
                ) as resp:
                    status = resp.status
                    data = await _body(resp)
                    log.debug("Automox %s %s -> %s", method, path, status)
                    if status < 300:
                        return data
                    if status not in _RETRY_STATUSES:
                        raise _translate(method, path, status, data)
                    wait = parse_retry_after(resp.headers.get("Retry-After"))
                    error: AutomoxError = AutomoxUnavailable(
                        _message(method, path, status, data), status=status, retry_after=wait
                    )
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                kind = "timed out" if isinstance(exc, TimeoutError) else type(exc).__name__
                error = AutomoxUnavailable(f"Automox {method} {path}: {kind}")
                error.__cause__ = exc
            if attempt == attempts:
                raise error
            if wait is None:
                wait = min(10.0, 0.5 * 2 ** (attempt - 1))
            elif wait > self._max_retry_wait:
                raise error
            log.info("Automox %s %s: retrying in %.1fs (%s)", method, path, wait, error)
            await self._sleep(wait)
        raise AssertionError("unreachable")


async def _body(resp: aiohttp.ClientResponse) -> Any:
    text = await resp.text()
    if not text:
        return None
    try:
        return await resp.json(content_type=None)
    except ValueError:
        return {"message": text[:500]}


def _message(method: str, path: str, status: int, data: Any) -> str:
    detail: Any = data
    if isinstance(data, dict):
        detail = data.get("message") or data.get("errors") or data.get("error") or data
    return f"Automox {method} {path} answered {status}: {detail if detail else '(no detail)'}"


def _translate(method: str, path: str, status: int, data: Any) -> AutomoxError:
    message = _message(method, path, status, data)
    if status == 401:
        return AutomoxAuthError(f"{message} (check PATCHGATE_AUTOMOX_API_KEY)", status=status)
    if status == 403:
        return AutomoxForbidden(f"{message} (check PATCHGATE_AUTOMOX_ORG)", status=status)
    if status == 404:
        return AutomoxNotFound(message, status=status)
    if status in (400, 409, 422):
        return AutomoxRejected(message, status=status)
    if status >= 500:
        return AutomoxUnavailable(message, status=status)
    return AutomoxError(message, status=status)
