"""An async client for the AWX / Automation Platform controller REST API v2 (aiohttp).

Token auth (``Authorization: Bearer <token>``), a timeout per call, pagination by the
``next`` links of AWX's list views (``count``/``next``/``previous``/``results``,
``page_size`` at most 200), and AWX's errors translated into :mod:`.errors`.

Retries: an idempotent call (GET, cancel) is retried on a transport error, a timeout,
429, 502, 503 and 504, at most ``max_attempts`` times, waiting what ``Retry-After`` says
(seconds or an HTTP date) or a short backoff; a ``Retry-After`` beyond ``max_retry_wait``
is not slept through but raised (:class:`AwxUnavailable` carries it). A launch is never
retried here: the backend looks the job up by its marker before launching again.

The token lives in a ``SecretStr`` and goes only into the request header; no message or
log line carries it.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from pydantic import SecretStr

from integrations.backends.awx.errors import (
    AwxAuthError,
    AwxError,
    AwxForbidden,
    AwxNotFound,
    AwxRejected,
    AwxUnavailable,
)

log = logging.getLogger(__name__)

MAX_PAGE_SIZE = 200  # AWX's MAX_PAGE_SIZE: a larger page_size is capped to it
_RETRY_STATUSES = frozenset({429, 502, 503, 504})
Params = Mapping[str, str | int]


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class AwxClient:
    """One controller, one token. Build it in the composition root; ``close()`` at exit."""

    def __init__(
        self,
        url: str,
        token: SecretStr,
        *,
        api_path: str = "/api/v2/",
        verify_tls: bool = True,
        timeout: float = 30.0,
        max_attempts: int = 4,
        max_retry_wait: float = 60.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"AWX URL must be http(s)://host[:port], got {url!r}")
        self._origin = f"{parts.scheme}://{parts.netloc}"
        prefix = (parts.path.rstrip("/") + "/" + api_path.strip("/")).strip("/")
        self._api = f"/{prefix}/"
        self._token = token
        self._verify_tls = verify_tls
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._max_attempts = max(1, max_attempts)
        self._max_retry_wait = max_retry_wait
        self._sleep = sleep
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"AwxClient({self._origin}{self._api})"

    @property
    def api_root(self) -> str:
        return f"{self._origin}{self._api}"

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=self._timeout,
                connector=aiohttp.TCPConnector(ssl=self._verify_tls),
                headers={"Accept": "application/json"},
            )
        return self._session

    def _url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            if not path.startswith(self._origin + "/"):
                raise AwxError(f"AWX answered with a link to another server: {path}")
            return path
        if path.startswith("/"):
            return self._origin + path  # AWX's next links are absolute paths
        return self._api_url(path)

    def _api_url(self, path: str) -> str:
        return f"{self._origin}{self._api}{path.lstrip('/')}"

    # --- calls ------------------------------------------------------------------------------

    async def get(self, path: str, params: Params | None = None) -> dict[str, Any]:
        _status, body, _ = await self._call("GET", path, params=params, idempotent=True)
        return body

    async def post(
        self, path: str, body: Mapping[str, Any] | None = None, *, idempotent: bool
    ) -> tuple[int, dict[str, Any]]:
        status, data, _ = await self._call("POST", path, json=body or {}, idempotent=idempotent)
        return status, data

    async def me(self) -> str:
        """The token's user name (``GET me/``): a cheap check of the URL and the token."""
        data = await self.get("me/")
        users = data.get("results") or []
        if not users:
            raise AwxError("AWX me/ answered without a user")
        return str(users[0].get("username"))

    async def pages(self, path: str, params: Params | None = None) -> AsyncIterator[dict[str, Any]]:
        """Every item of a list view, following ``next`` links (``page_size`` 200)."""
        query: dict[str, str | int] = dict(params or {})
        query.setdefault("page_size", MAX_PAGE_SIZE)
        page: dict[str, Any] = await self.get(path, query)
        while True:
            results = page.get("results")
            if not isinstance(results, list):
                raise AwxError(f"AWX list {path} answered without results")
            for item in results:
                yield item
            nxt = page.get("next")
            if not nxt or not results:
                return
            page = await self.get(str(nxt))

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        json: Mapping[str, Any] | None = None,
        idempotent: bool,
    ) -> tuple[int, dict[str, Any], Mapping[str, str]]:
        url = self._url(path)
        shown = urlsplit(url).path
        attempts = self._max_attempts if idempotent else 1
        headers = {"Authorization": f"Bearer {self._token.get_secret_value()}"}
        for attempt in range(1, attempts + 1):
            wait: float | None = None
            try:
                async with self._http().request(
                    method,
                    url,
                    params={k: str(v) for k, v in (params or {}).items()},
                    json=json,
                    headers=headers,
                    allow_redirects=False,
                ) as resp:
                    status = resp.status
                    data = await _json_body(resp)
                    log.debug("AWX %s %s -> %s", method, shown, status)
                    if status < 300:
                        return status, data, dict(resp.headers)
                    if status in _RETRY_STATUSES:
                        wait = parse_retry_after(resp.headers.get("Retry-After"))
                        error: AwxError = AwxUnavailable(
                            _message(method, shown, status, data),
                            status=status,
                            retry_after=wait,
                        )
                    else:
                        raise _translate(method, shown, status, data)
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                kind = "timed out" if isinstance(exc, TimeoutError) else type(exc).__name__
                log.debug("AWX %s %s failed: %s", method, shown, kind)
                error = AwxUnavailable(f"AWX {method} {shown}: {kind}")
                error.__cause__ = exc
            if attempt == attempts:
                raise error
            if wait is None:
                wait = min(10.0, 0.5 * 2 ** (attempt - 1))
            elif wait > self._max_retry_wait:
                raise error  # AWX asks for a longer pause than a call may take
            log.info("AWX %s %s: retrying in %.1fs (%s)", method, shown, wait, error)
            await self._sleep(wait)
        raise AssertionError("unreachable")


async def _json_body(resp: aiohttp.ClientResponse) -> dict[str, Any]:
    text = await resp.text()
    if not text:
        return {}
    try:
        data = await resp.json(content_type=None)
    except ValueError:
        return {"detail": text[:500]}
    return data if isinstance(data, dict) else {"results": data}


def _message(method: str, path: str, status: int, data: Mapping[str, Any]) -> str:
    detail = data.get("detail")
    if detail is None:
        fields = "; ".join(f"{k}: {_flat(v)}" for k, v in data.items())
        detail = fields or "(no detail)"
    return f"AWX {method} {path} answered {status}: {detail}"


def _flat(value: Any) -> str:
    if isinstance(value, list):
        return " ".join(_flat(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}={_flat(v)}" for k, v in value.items())
    return str(value)


def _translate(method: str, path: str, status: int, data: Mapping[str, Any]) -> AwxError:
    message = _message(method, path, status, data)
    if status == 401:
        return AwxAuthError(
            f"{message} (check PATCHGATE_AWX_TOKEN: a personal access token of a user "
            "allowed to execute the job templates)",
            status=status,
        )
    if status == 403:
        return AwxForbidden(message, status=status)
    if status == 404:
        return AwxNotFound(message, status=status)
    if status in (400, 405, 409):
        return AwxRejected(message, status=status, fields=data)
    if status >= 500:
        return AwxUnavailable(message, status=status)
    return AwxError(message, status=status, fields=data)
