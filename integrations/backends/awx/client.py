"""An async client for the AWX / Automation Platform controller REST API v2.

Built on :class:`~integrations.backends.rest.RestClient` (one request path, the retries,
the error tree): token auth (``Authorization: Bearer <token>``), pagination by the
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
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, ClassVar

from pydantic import SecretStr

from integrations.backends.awx.errors import AWX_ERRORS, AwxError
from integrations.backends.rest import BearerToken, ErrorKinds, Params, RestClient
from integrations.backends.rest.client import flat
from integrations.backends.rest.client import parse_retry_after as parse_retry_after

MAX_PAGE_SIZE = 200  # AWX's MAX_PAGE_SIZE: a larger page_size is capped to it

__all__ = ["MAX_PAGE_SIZE", "AwxClient", "parse_retry_after"]


class AwxClient(RestClient):
    """One controller, one token. Build it in the composition root; ``close()`` at exit."""

    tool: ClassVar[str] = "AWX"
    errors: ClassVar[ErrorKinds] = AWX_ERRORS
    rejected_statuses: ClassVar[frozenset[int]] = frozenset({400, 405, 409})
    auth_hint: ClassVar[str] = (
        "check PATCHGATE_AWX_TOKEN: a personal access token of a user "
        "allowed to execute the job templates"
    )
    origin_paths: ClassVar[bool] = True  # AWX's next links are absolute paths

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
        super().__init__(
            url,
            BearerToken(token),
            api_path=api_path,
            verify_tls=verify_tls,
            timeout=timeout,
            max_attempts=max_attempts,
            max_retry_wait=max_retry_wait,
            sleep=sleep,
        )

    def non_json(self, text: str) -> Any:
        return {"detail": text[:500]}

    def error_detail(self, data: Any) -> str:
        detail = data.get("detail")
        if detail is None:
            fields = "; ".join(f"{k}: {flat(v)}" for k, v in data.items())
            detail = fields or "(no detail)"
        return str(detail)

    async def get(self, path: str, params: Params | None = None) -> dict[str, Any]:
        data: dict[str, Any] = await super().get(path, params)
        return data

    async def post(
        self, path: str, body: Mapping[str, Any] | None = None, *, idempotent: bool
    ) -> tuple[int, dict[str, Any]]:
        answer = await self.request("POST", path, json=body or {}, idempotent=idempotent)
        return answer.status, answer.data

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
        async for item in self.follow_next(path, query):
            yield item
