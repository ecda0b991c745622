"""The REST client base the fleet-tool clients (AWX, Satellite, Automox, ...) are built on.

One request path: an origin and a path prefix from the URL (checked at construction), an
aiohttp session built lazily (a total timeout, TLS verified against the system store or a
CA file, or not at all when told, default headers), an auth provider for ``Authorization``.

Retries: an idempotent call is retried on a transport error, a timeout and the retry
statuses (429, 502, 503, 504), at most ``max_attempts`` times, waiting what ``Retry-After``
says (seconds or an HTTP date) or a capped exponential backoff; a ``Retry-After`` beyond
``max_retry_wait`` is raised, not slept through. A non-idempotent call (a POST that starts
a job) is never retried. A 401 with a refreshing auth provider (OAuth2) invalidates the
token and tries once more with a new one.

Bodies: an empty body is ``None``, a non-JSON body goes through :meth:`non_json` (never an
exception); with ``objects_only`` every body is a dict (``{}``, or ``{"results": [...]}``
for a list). Errors: the tool's :class:`ErrorKinds` by status, its message from
:meth:`error_detail`, its 401 hint from ``auth_hint``.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

import aiohttp

from integrations.backends.rest.auth import AuthProvider
from integrations.backends.rest.errors import ErrorKinds, ToolError, ToolUnavailable

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 502, 503, 504})
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


def backoff(attempt: int, *, base: float = 0.5, cap: float = 10.0) -> float:
    """The wait before try ``attempt + 1`` when the tool did not say: 0.5, 1, 2, ... ≤ cap."""
    return min(cap, base * 2.0 ** (attempt - 1))


@dataclass(frozen=True)
class RestResponse:
    status: int
    data: Any
    headers: Mapping[str, str] = field(default_factory=dict)


class RestClient:
    """One server, one credential. Subclass per tool; ``close()`` at exit.

    Per tool (class attributes and hooks): ``tool`` (the name in messages), ``errors``,
    ``rejected_statuses``, ``auth_hint`` / ``forbidden_hint`` (which settings to check),
    ``objects_only``, ``origin_paths`` (whether ``/x`` is on the origin, as AWX's links,
    or under the prefix), ``paths_as_called`` (messages show the path as the caller gave
    it, not the URL's), ``url_shape``, :meth:`error_detail`, :meth:`non_json`, :meth:`shown`.
    """

    tool: ClassVar[str] = "Tool"
    errors: ClassVar[ErrorKinds] = ErrorKinds()
    rejected_statuses: ClassVar[frozenset[int]] = frozenset({400, 409, 422})
    auth_hint: ClassVar[str] = ""
    forbidden_hint: ClassVar[str] = ""
    objects_only: ClassVar[bool] = True
    origin_paths: ClassVar[bool] = False
    paths_as_called: ClassVar[bool] = False
    url_shape: ClassVar[str] = "URL must be http(s)://host[:port]"

    def __init__(
        self,
        url: str,
        auth: AuthProvider | None,
        *,
        api_path: str = "",
        verify_tls: bool = True,
        ca_file: Path | None = None,
        timeout: float = 30.0,
        max_attempts: int = 4,
        max_retry_wait: float = 60.0,
        retry_statuses: Collection[int] = RETRY_STATUSES,
        headers: Mapping[str, str] | None = None,
        params: Params | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"{self.tool} {self.url_shape}, got {url!r}")
        self._origin = f"{parts.scheme}://{parts.netloc}"
        prefix = (parts.path.rstrip("/") + "/" + api_path.strip("/")).strip("/")
        self._prefix = f"/{prefix}/" if prefix else "/"
        self._auth = auth
        self._verify_tls = verify_tls
        self._ca_file = ca_file
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._max_attempts = max(1, max_attempts)
        self._max_retry_wait = max_retry_wait
        self._retry_statuses = frozenset(retry_statuses)
        self._headers = {"Accept": "application/json", **(headers or {})}
        self._params = {k: str(v) for k, v in (params or {}).items()}
        self._sleep = sleep
        self._session: aiohttp.ClientSession | None = None
        use_tls = getattr(auth, "use_tls", None)
        if use_tls is not None:
            use_tls(self._tls())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.api_root})"

    @property
    def api_root(self) -> str:
        return f"{self._origin}{self._prefix}"

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        closer = getattr(self._auth, "close", None)
        if closer is not None:
            await closer()

    def _tls(self) -> ssl.SSLContext | bool:
        if self._verify_tls and self._ca_file is not None:
            return ssl.create_default_context(cafile=str(self._ca_file))
        return self._verify_tls

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=self._timeout,
                connector=aiohttp.TCPConnector(ssl=self._tls()),
                headers=self._headers,
            )
        return self._session

    def url(self, path: str) -> str:
        """An absolute URL for ``path``: a link on this origin, or a path under the prefix."""
        if path.startswith(("http://", "https://")):
            if not path.startswith(self._origin + "/"):
                raise self.errors.base(
                    f"{self.tool} answered with a link to another server: {path}"
                )
            return path
        if path.startswith("/") and self.origin_paths:
            return self._origin + path
        return f"{self._origin}{self._prefix}{path.lstrip('/')}"

    # --- per-tool hooks -----------------------------------------------------------------

    def shown(self, path: str, url: str) -> str:
        """The path as messages and logs show it: the URL's path, or as the caller wrote it."""
        return path if self.paths_as_called else urlsplit(url).path

    def non_json(self, text: str) -> Any:
        """The body of an answer that is not JSON (cut short)."""
        return {"message": text[:500]}

    def error_detail(self, data: Any) -> str:
        """The tool's error text from an error body (override per tool)."""
        if isinstance(data, Mapping):
            for key in ("message", "detail", "error_description", "error"):
                if data.get(key):
                    return flat(data[key])
        return flat(data) if data else "(no detail)"

    # --- calls --------------------------------------------------------------------------

    async def get(self, path: str, params: Params | None = None) -> Any:
        return (await self.request("GET", path, params=params, idempotent=True)).data

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        json: Any = None,
        idempotent: bool,
    ) -> RestResponse:
        url = self.url(path)
        shown = self.shown(path, url)
        query = {**self._params, **{k: str(v) for k, v in (params or {}).items()}}
        attempts = self._max_attempts if idempotent else 1
        refreshed = False
        attempt = 0
        while True:
            attempt += 1
            wait: float | None = None
            error: ToolUnavailable
            try:
                status, data, headers = await self._send(method, url, shown, query, json)
            except ToolUnavailable as exc:  # transport, timeout, or the token endpoint
                error = exc
            else:
                if status < 300:
                    return RestResponse(status, data, headers)
                if status == 401 and self._auth and self._auth.refreshes and not refreshed:
                    self._auth.invalidate()  # an expired or revoked token: one fresh try
                    refreshed = True
                    attempt -= 1
                    continue
                if status not in self._retry_statuses:
                    raise self.translate(method, shown, status, data)
                wait = parse_retry_after(headers.get("Retry-After"))
                error = self.errors.unavailable(
                    self.message(method, shown, status, data), status=status, retry_after=wait
                )
            if attempt >= attempts:
                raise error
            if wait is None:
                wait = backoff(attempt)
            elif wait > self._max_retry_wait:
                raise error  # the tool asks for a longer pause than a call may take
            log.info("%s %s %s: retrying in %.1fs (%s)", self.tool, method, shown, wait, error)
            await self._sleep(wait)

    async def _send(
        self, method: str, url: str, shown: str, query: Mapping[str, str], json: Any
    ) -> tuple[int, Any, Mapping[str, str]]:
        """One try: the status, the parsed body and the headers (transport errors raised as
        the tool's unavailable error, an auth provider's errors as the tool's kind)."""
        headers: dict[str, str] = {}
        if self._auth is not None:
            try:
                headers["Authorization"] = await self._auth.header()
            except ToolError as exc:
                raise self.errors.like(exc) from exc.__cause__
        try:
            async with self._http().request(
                method, url, params=query, json=json, headers=headers, allow_redirects=False
            ) as resp:
                data = await self._body(resp)
                log.debug("%s %s %s -> %s", self.tool, method, shown, resp.status)
                return resp.status, data, dict(resp.headers)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            kind = "timed out" if isinstance(exc, TimeoutError) else type(exc).__name__
            log.debug("%s %s %s failed: %s", self.tool, method, shown, kind)
            raise self.errors.unavailable(f"{self.tool} {method} {shown}: {kind}") from exc

    async def _body(self, resp: aiohttp.ClientResponse) -> Any:
        text = await resp.text()
        if not text:
            data: Any = None
        else:
            try:
                data = await resp.json(content_type=None)
            except ValueError:
                data = self.non_json(text)
        if not self.objects_only:
            return data
        if data is None:
            return {}
        return data if isinstance(data, dict) else {"results": data}

    def message(self, method: str, path: str, status: int, data: Any) -> str:
        return f"{self.tool} {method} {path} answered {status}: {self.error_detail(data)}"

    def translate(self, method: str, path: str, status: int, data: Any) -> ToolError:
        """The tool's error for an error answer that is not retried."""
        message = self.message(method, path, status, data)
        fields = data if isinstance(data, Mapping) else None
        kinds = self.errors
        if status == 401:
            hint = f" ({self.auth_hint})" if self.auth_hint else ""
            return kinds.auth(message + hint, status=status)
        if status == 403:
            hint = f" ({self.forbidden_hint})" if self.forbidden_hint else ""
            return kinds.forbidden(message + hint, status=status)
        if status == 404:
            return kinds.not_found(message, status=status)
        if status in self.rejected_statuses:
            return kinds.rejected(message, status=status, fields=fields)
        if status >= 500 or status == 429:
            return kinds.unavailable(message, status=status)
        return kinds.base(message, status=status, fields=fields)

    # --- paging -------------------------------------------------------------------------

    async def follow_next(
        self,
        path: str,
        params: Params | None = None,
        *,
        items: str = "results",
        next_key: str = "next",
    ) -> AsyncIterator[Any]:
        """Every item of a list whose pages link the next one (AWX ``next``, Graph
        ``@odata.nextLink`` with ``items="value"``); a link is followed as is (it carries
        its own query) and must stay on this server."""
        page = await self.get(path, params)
        while True:
            found = page.get(items) if isinstance(page, Mapping) else None
            if not isinstance(found, list):
                raise self.errors.base(f"{self.tool} list {path} answered without {items}")
            for item in found:
                yield item
            nxt = page.get(next_key)
            if not nxt or not found:
                return
            page = await self.get(str(nxt))


def flat(value: Any) -> str:
    """A JSON value as one line of text (lists joined, objects as k=v)."""
    if isinstance(value, list):
        return " ".join(flat(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}={flat(v)}" for k, v in value.items())
    return str(value)
