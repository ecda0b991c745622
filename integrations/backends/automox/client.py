"""An async client for the Automox console API.

Built on :class:`~integrations.backends.rest.RestClient`:
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
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, ClassVar

from pydantic import SecretStr

from integrations.backends.automox.errors import AUTOMOX_ERRORS, AutomoxError
from integrations.backends.rest import BearerToken, ErrorKinds, Params, RestClient

MAX_LIMIT = 500  # the documented maximum of ``limit``


class AutomoxClient(RestClient):
    """One organization, one API key. Build it in the composition root; ``close()`` at exit."""

    tool: ClassVar[str] = "Automox"
    errors: ClassVar[ErrorKinds] = AUTOMOX_ERRORS
    auth_hint: ClassVar[str] = "check PATCHGATE_AUTOMOX_API_KEY"
    forbidden_hint: ClassVar[str] = "check PATCHGATE_AUTOMOX_ORG"
    objects_only: ClassVar[bool] = False  # Automox lists are bare JSON arrays
    paths_as_called: ClassVar[bool] = True
    url_shape: ClassVar[str] = "API URL must be http(s)://host/api"

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
        super().__init__(
            url,
            BearerToken(api_key),
            timeout=timeout,
            max_attempts=max_attempts,
            max_retry_wait=max_retry_wait,
            params={"o": org_id},
            sleep=sleep,
        )
        self.org_id = org_id
        self._limit = max(1, min(MAX_LIMIT, page_limit))

    def __repr__(self) -> str:
        return f"AutomoxClient({self.api_root.rstrip('/')}, o={self.org_id})"

    def error_detail(self, data: Any) -> str:
        detail: Any = data
        if isinstance(data, dict):
            detail = data.get("message") or data.get("errors") or data.get("error") or data
        return str(detail) if detail else "(no detail)"

    async def post(self, path: str, body: Mapping[str, Any]) -> Any:
        return (await self.request("POST", path, json=body, idempotent=False)).data

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
