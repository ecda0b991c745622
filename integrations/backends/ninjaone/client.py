"""An async client of NinjaOne's public API v2, on the REST client base.

``{url}/v2/...`` with an OAuth2 client-credentials token from ``{url}/ws/oauth/token``
(a form POST of the client id, secret and scope; the token cached until shortly before
``expires_in`` and fetched once more when the API answers 401). GETs are retried by the
base (transport errors, 429 with ``Retry-After``, 502-504); a POST (an apply or a scan)
is tried once: the backend decides what an unconfirmed apply means. Two pagings: ``after``
(the last id of the previous page) for the device and organisation lists, and the report
cursor (``{cursor: {name, ...}, results}``) of the queries.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, ClassVar

from pydantic import SecretStr

from integrations.backends.ninjaone.errors import NINJAONE_ERRORS, NinjaOneError
from integrations.backends.rest import ErrorKinds, OAuth2ClientCredentials, Params, RestClient

DEFAULT_SCOPE = "monitoring management"


class NinjaOneClient(RestClient):
    """One region, one API client app. Build it in the composition root; ``close()`` at exit."""

    tool: ClassVar[str] = "NinjaOne"
    errors: ClassVar[ErrorKinds] = NINJAONE_ERRORS
    auth_hint: ClassVar[str] = (
        "a fresh token was refused too: check PATCHGATE_NINJAONE_CLIENT_ID and _CLIENT_SECRET"
    )
    forbidden_hint: ClassVar[str] = "check the scope: PATCHGATE_NINJAONE_SCOPE"
    objects_only: ClassVar[bool] = False  # NinjaOne's lists are bare JSON arrays
    paths_as_called: ClassVar[bool] = True
    url_shape: ClassVar[str] = "URL must be the region's https://host"

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
        self.token = OAuth2ClientCredentials(
            f"{url.rstrip('/')}/ws/oauth/token",
            client_id,
            client_secret,
            scope=scope,
            timeout=timeout,
        )
        super().__init__(
            url,
            self.token,
            timeout=timeout,
            max_attempts=max_attempts,
            max_retry_wait=max_retry_wait,
            sleep=sleep,
        )
        self.page_size = max(1, page_size)

    def __repr__(self) -> str:
        return f"NinjaOneClient({self.api_root.rstrip('/')}, client_id={self.token.client_id!r})"

    def error_detail(self, data: Any) -> str:
        """NinjaOne's error text (``errorMessage``, else the usual keys) and incident id."""
        if not isinstance(data, Mapping):
            return str(data) if data else "(no detail)"
        detail = next(
            (
                str(data[k])
                for k in ("errorMessage", "message", "error_description", "error")
                if data.get(k)
            ),
            str(data) if data else "(no detail)",
        )
        return f"{detail} (incident {data['incidentId']})" if data.get("incidentId") else detail

    async def post(self, path: str, json: Mapping[str, Any] | None = None) -> Any:
        return (await self.request("POST", path, json=json, idempotent=False)).data

    async def after_pages(
        self, path: str, params: Params | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """Every item of a list paged by ``after`` (the last ``id`` of the page before)."""
        after: int | None = None
        while True:
            query: dict[str, str | int] = {**(params or {}), "pageSize": self.page_size}
            if after is not None:
                query["after"] = after
            items = _dicts(path, await self.get(path, query))
            for item in items:
                yield item
            last = items[-1].get("id") if items else None
            if len(items) < self.page_size or not isinstance(last, int) or last == after:
                return
            after = last

    async def cursor_pages(
        self, path: str, params: Params | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """Every result of a query report, following its ``cursor``."""
        query: dict[str, str | int] = {**(params or {}), "pageSize": self.page_size}
        seen: set[str] = set()
        while True:
            report = await self.get(path, query)
            if not isinstance(report, dict):
                raise NinjaOneError(f"NinjaOne GET {path} is not a report with results")
            results = _dicts(path, report.get("results"))
            for item in results:
                yield item
            cursor = report.get("cursor")
            name = cursor.get("name") if isinstance(cursor, dict) else None
            if len(results) < self.page_size or not isinstance(name, str) or not name:
                return
            if name in seen:
                raise NinjaOneError(f"NinjaOne GET {path} returned the cursor {name!r} twice")
            seen.add(name)
            query = {"cursor": name, "pageSize": self.page_size}


def _dicts(path: str, items: Any) -> list[dict[str, Any]]:
    if not isinstance(items, list):
        raise NinjaOneError(f"NinjaOne GET {path} answered {type(items).__name__}, not a list")
    for item in items:
        if not isinstance(item, dict):
            raise NinjaOneError(f"NinjaOne GET {path} listed a {type(item).__name__}")
    return items
