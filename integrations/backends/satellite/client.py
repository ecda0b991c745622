"""An async client for the Foreman / Katello REST API v2 (Red Hat Satellite), aiohttp.

HTTP Basic auth (a user and its password or personal access token) over HTTPS, verified
against the system CA store or ``ca_file`` (Satellite's own CA, ``katello-server-ca.crt``);
a timeout per call; Foreman's paging (``page``/``per_page``, answers carrying ``total``,
``subtotal``, ``page``, ``per_page``, ``results``) and its errors (``{"error": {"message":
...}}``, 422 ``full_messages``) translated into :mod:`.errors`.

Retries: a GET is retried on a transport error, a timeout, 429, 502, 503 and 504, at most
``max_attempts`` times, waiting what ``Retry-After`` says or a short backoff; a
``Retry-After`` beyond ``max_retry_wait`` is raised, not slept through. A POST (a job
invocation) is never retried here: the backend looks for its key before posting again.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from pydantic import SecretStr

from integrations.backends.awx.client import parse_retry_after
from integrations.backends.satellite.errors import (
    SatelliteAuthError,
    SatelliteError,
    SatelliteForbidden,
    SatelliteNotFound,
    SatelliteRejected,
    SatelliteUnavailable,
)

log = logging.getLogger(__name__)

PER_PAGE = 100
_RETRY_STATUSES = frozenset({429, 502, 503, 504})
Params = Mapping[str, str | int]


class SatelliteClient:
    """One Satellite server, one user. Build it in the composition root; ``close()`` at exit."""

    def __init__(
        self,
        url: str,
        user: str,
        password: SecretStr,
        *,
        verify_tls: bool = True,
        ca_file: Path | None = None,
        timeout: float = 30.0,
        max_attempts: int = 4,
        max_retry_wait: float = 60.0,
        per_page: int = PER_PAGE,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"Satellite URL must be http(s)://host[:port], got {url!r}")
        self._origin = f"{parts.scheme}://{parts.netloc}"
        self._prefix = parts.path.rstrip("/")
        token = base64.b64encode(f"{user}:{password.get_secret_value()}".encode()).decode()
        self._auth = SecretStr(f"Basic {token}")
        self._verify_tls = verify_tls
        self._ca_file = ca_file
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._max_attempts = max(1, max_attempts)
        self._max_retry_wait = max_retry_wait
        self._per_page = max(1, per_page)
        self._sleep = sleep
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"SatelliteClient({self._origin}{self._prefix})"

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            tls: ssl.SSLContext | bool = self._verify_tls
            if self._verify_tls and self._ca_file is not None:
                tls = ssl.create_default_context(cafile=str(self._ca_file))
            self._session = aiohttp.ClientSession(
                timeout=self._timeout,
                connector=aiohttp.TCPConnector(ssl=tls),
                headers={"Accept": "application/json", "Content-Type": "application/json"},
            )
        return self._session

    # --- calls ------------------------------------------------------------------------------

    async def get(self, path: str, params: Params | None = None) -> dict[str, Any]:
        return await self._call("GET", path, params=params, idempotent=True)

    async def post(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return await self._call("POST", path, json=body, idempotent=False)

    async def status(self) -> str:
        """Foreman's version (``GET /api/status``): a cheap check of the URL and the user."""
        data = await self.get("/api/status")
        return str(data.get("version") or "?")

    async def pages(self, path: str, params: Params | None = None) -> AsyncIterator[dict[str, Any]]:
        """Every item of an index, page by page until ``subtotal`` items were read."""
        query: dict[str, str | int] = dict(params or {})
        query.setdefault("per_page", self._per_page)
        page = 1
        seen = 0
        while True:
            query["page"] = page
            data = await self.get(path, query)
            results = data.get("results")
            if not isinstance(results, list):
                raise SatelliteError(f"Satellite GET {path} answered without a results list")
            for item in results:
                if not isinstance(item, dict):
                    raise SatelliteError(f"Satellite GET {path}: a result is not an object")
                yield item
            seen += len(results)
            subtotal = data.get("subtotal", data.get("total"))
            if not results or not isinstance(subtotal, int) or seen >= subtotal:
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
    ) -> dict[str, Any]:
        url = f"{self._origin}{self._prefix}{path}"
        attempts = self._max_attempts if idempotent else 1
        for attempt in range(1, attempts + 1):
            wait: float | None = None
            try:
                async with self._http().request(
                    method,
                    url,
                    params={k: str(v) for k, v in (params or {}).items()},
                    json=json,
                    headers={"Authorization": self._auth.get_secret_value()},
                    allow_redirects=False,
                ) as resp:
                    status = resp.status
                    data = await _json_body(resp)
                    log.debug("Satellite %s %s -> %s", method, path, status)
                    if status < 300:
                        return data
                    if status in _RETRY_STATUSES:
                        wait = parse_retry_after(resp.headers.get("Retry-After"))
                        error: SatelliteError = SatelliteUnavailable(
                            _message(method, path, status, data), status=status, retry_after=wait
                        )
                    else:
                        raise _translate(method, path, status, data)
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                kind = "timed out" if isinstance(exc, TimeoutError) else type(exc).__name__
                error = SatelliteUnavailable(f"Satellite {method} {path}: {kind}")
                error.__cause__ = exc
            if attempt == attempts:
                raise error
            if wait is None:
                wait = min(10.0, 0.5 * 2 ** (attempt - 1))
            elif wait > self._max_retry_wait:
                raise error
            log.info("Satellite %s %s: retrying in %.1fs (%s)", method, path, wait, error)
            await self._sleep(wait)
        raise AssertionError("unreachable")


async def _json_body(resp: aiohttp.ClientResponse) -> dict[str, Any]:
    text = await resp.text()
    if not text:
        return {}
    try:
        data = await resp.json(content_type=None)
    except ValueError:
        return {"error": {"message": text[:500]}}
    return data if isinstance(data, dict) else {"results": data}


def _message(method: str, path: str, status: int, data: Mapping[str, Any]) -> str:
    error = data.get("error")
    detail = ""
    if isinstance(error, Mapping):
        messages = error.get("full_messages")
        if isinstance(messages, list) and messages:
            detail = "; ".join(str(m) for m in messages)
        else:
            detail = str(error.get("message") or "")
    elif error:
        detail = str(error)
    elif data.get("message"):  # e.g. a job invocation's cancel: {"message": "..."}
        detail = str(data["message"])
    return f"Satellite {method} {path} answered {status}: {detail or '(no message)'}"


def _translate(method: str, path: str, status: int, data: Mapping[str, Any]) -> SatelliteError:
    message = _message(method, path, status, data)
    if status == 401:
        return SatelliteAuthError(
            f"{message} (check PATCHGATE_SATELLITE_USER and PATCHGATE_SATELLITE_PASSWORD)",
            status=status,
        )
    if status == 403:
        return SatelliteForbidden(message, status=status)
    if status == 404:
        return SatelliteNotFound(message, status=status)
    if status in (400, 422):
        return SatelliteRejected(message, status=status, fields=data)
    if status >= 500:
        return SatelliteUnavailable(message, status=status)
    return SatelliteError(message, status=status, fields=data)
