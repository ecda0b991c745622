"""An async client for Tanium's APIs (aiohttp): the API Gateway (GraphQL) and the few
REST routes Tanium's own published integration uses for Patch deployments.

- ``POST {url}/plugin/products/gateway/graphql`` with ``{"query", "variables"}``;
- ``GET``/``POST`` ``{url}/api/v2/...`` (platform REST) and
  ``{url}/plugin/products/patch/v2/...`` (Patch REST).

Every call carries the API token in the ``session`` header, as Tanium documents it
(developer.tanium.com, "Authentication Methods": the value keeps its ``token-`` prefix).

GraphQL: a query is idempotent and retried like a GET; a mutation is never retried
blindly (one attempt, except a 429, which the server refused before doing anything). A
200 answer carrying an ``errors`` array is an error (:class:`TaniumQueryError`), never
data. REST: a GET is retried, a POST (it creates something) is not, except on 429.

Retries: on a transport error, a timeout, 429, 502, 503, 504 at most ``max_attempts``
times, waiting what ``Retry-After`` says or a short backoff; a ``Retry-After`` beyond
``max_retry_wait`` is raised, not slept through.

This is a compact client of its own: the shared REST client base had not landed when
the backend was written (the design notes say so).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp
from pydantic import SecretStr

from integrations.backends.awx.client import parse_retry_after
from integrations.backends.tanium.errors import (
    TaniumAuthError,
    TaniumError,
    TaniumForbidden,
    TaniumNotFound,
    TaniumQueryError,
    TaniumRejected,
    TaniumUnavailable,
)

log = logging.getLogger(__name__)

GRAPHQL_PATH = "/plugin/products/gateway/graphql"
_RETRY_STATUSES = frozenset({429, 502, 503, 504})


def by_name(prefix: str, name: str) -> str:
    """A ``.../by-name/<name>`` route with the name escaped as one path segment."""
    return f"{prefix}/by-name/{quote(name, safe='')}"


class TaniumClient:
    """One Tanium server (or Tanium Cloud instance), one API token."""

    def __init__(
        self,
        url: str,
        token: SecretStr,
        *,
        verify_tls: bool = True,
        ca_file: Path | None = None,
        timeout: float = 30.0,
        max_attempts: int = 4,
        max_retry_wait: float = 120.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"Tanium URL must be http(s)://host[:port], got {url!r}")
        self._base = url.rstrip("/")
        self._token = token
        self._verify = verify_tls
        self._ca_file = ca_file
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._max_attempts = max(1, max_attempts)
        self._max_retry_wait = max_retry_wait
        self._sleep = sleep
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            tls: ssl.SSLContext | bool = self._verify
            if self._verify and self._ca_file is not None:
                tls = ssl.create_default_context(cafile=str(self._ca_file))
            self._session = aiohttp.ClientSession(
                timeout=self._timeout, connector=aiohttp.TCPConnector(ssl=tls)
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # --- GraphQL ------------------------------------------------------------------------

    async def graphql(
        self, document: str, variables: Mapping[str, Any], *, mutation: bool = False
    ) -> dict[str, Any]:
        """The ``data`` of a Gateway answer; its ``errors`` raised as TaniumQueryError."""
        body = {"query": document, "variables": dict(variables)}
        answer = await self._call("POST", GRAPHQL_PATH, json=body, idempotent=not mutation)
        if not isinstance(answer, dict):
            raise TaniumError(f"Tanium Gateway answered {type(answer).__name__}, not an object")
        errors = answer.get("errors")
        if errors:
            messages = tuple(_error_text(e) for e in (errors if isinstance(errors, list) else []))
            messages = messages or (str(errors)[:300],)
            raise TaniumQueryError(
                "Tanium Gateway answered errors: " + "; ".join(messages), messages=messages
            )
        data = answer.get("data")
        if not isinstance(data, dict):
            raise TaniumError("Tanium Gateway answered no data and no errors")
        return data

    # --- REST ---------------------------------------------------------------------------

    async def get(self, path: str) -> Any:
        return await self._call("GET", path, idempotent=True)

    async def post(self, path: str, body: Mapping[str, Any]) -> Any:
        """A POST that creates something: one attempt (a 429 aside)."""
        return await self._call("POST", path, json=body, idempotent=False)

    async def _call(
        self, method: str, path: str, *, json: Mapping[str, Any] | None = None, idempotent: bool
    ) -> Any:
        url = f"{self._base}/{path.lstrip('/')}"
        headers = {"session": self._token.get_secret_value(), "Accept": "application/json"}
        for attempt in range(1, self._max_attempts + 1):
            wait: float | None = None
            try:
                async with self._http().request(
                    method, url, json=json, headers=headers, allow_redirects=False
                ) as resp:
                    status = resp.status
                    data = await _body(resp)
                    log.debug("Tanium %s %s -> %s", method, path, status)
                    if status < 300:
                        return data
                    if status not in _RETRY_STATUSES:
                        raise _translate(method, path, status, data)
                    wait = parse_retry_after(resp.headers.get("Retry-After"))
                    error: TaniumError = TaniumUnavailable(
                        _message(method, path, status, data), status=status, retry_after=wait
                    )
                    retry = idempotent or status == 429  # a 429 was refused, not performed
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                kind = "timed out" if isinstance(exc, TimeoutError) else type(exc).__name__
                error = TaniumUnavailable(f"Tanium {method} {path}: {kind}")
                error.__cause__ = exc
                retry = idempotent
            if not retry or attempt == self._max_attempts:
                raise error
            if wait is None:
                wait = min(10.0, 0.5 * 2 ** (attempt - 1))
            elif wait > self._max_retry_wait:
                raise error
            log.info("Tanium %s %s: retrying in %.1fs (%s)", method, path, wait, error)
            await self._sleep(wait)
        raise AssertionError("unreachable")


def _error_text(error: Any) -> str:
    if isinstance(error, dict):
        text = str(error.get("message") or error)
        path = error.get("path")
        return f"{text} (at {'.'.join(str(p) for p in path)})" if isinstance(path, list) else text
    return str(error)[:300]


async def _body(resp: aiohttp.ClientResponse) -> Any:
    text = await resp.text()
    if not text:
        return None
    try:
        return await resp.json(content_type=None)
    except ValueError:
        return {"text": text[:500]}


def _message(method: str, path: str, status: int, data: Any) -> str:
    detail: Any = data
    if isinstance(data, dict):
        errors = data.get("errors")
        if isinstance(errors, list) and errors:
            detail = "; ".join(_error_text(e) for e in errors)
        else:
            detail = data.get("text") or data.get("message") or data.get("error") or data
    return f"Tanium {method} {path} answered {status}: {detail if detail else '(no detail)'}"


def _translate(method: str, path: str, status: int, data: Any) -> TaniumError:
    message = _message(method, path, status, data)
    if status == 401:
        return TaniumAuthError(
            f"{message} (check PATCHGATE_TANIUM_TOKEN: its expiry and trusted addresses)",
            status=status,
        )
    if status == 403:
        return TaniumForbidden(message, status=status)
    if status == 404:
        return TaniumNotFound(message, status=status)
    if status in (400, 409, 422):
        return TaniumRejected(message, status=status)
    if status >= 500:
        return TaniumUnavailable(message, status=status)
    return TaniumError(message, status=status)
