"""An async Microsoft Graph client for the Intune backend, built on the REST client base
(:class:`~integrations.backends.rest.RestClient`).

Auth: OAuth2 client credentials against the Microsoft identity platform
(:class:`~integrations.backends.rest.OAuth2ClientCredentials`, ``POST {login}/{tenant}/
oauth2/v2.0/token`` with ``scope=https://graph.microsoft.com/.default``); the base caches
the token until shortly before ``expires_in`` and fetches one more when Graph answers 401
(an expired or revoked token), then tries the call again, once.

Paths are relative to the Graph root and name their version (``beta/admin/windows/
updates/...``, ``v1.0/deviceManagement/...``). Collections are read with :meth:`pages`,
which follows ``@odata.nextLink`` as Graph gives it (an absolute URL on the same server)
until there is none.

Retries (the base's): a GET is retried on a transport error, a timeout, 429, 502, 503
and 504, waiting what ``Retry-After`` says (Graph's throttling answer) or a short
backoff, a ``Retry-After`` beyond ``max_retry_wait`` raised; a POST or PATCH is never
retried blindly: the backend looks first whether it took effect. Graph's error body
``{"error": {"code", "message", "innerError": {"request-id"}}}`` makes the message.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, ClassVar
from urllib.parse import urlsplit

from pydantic import SecretStr

from integrations.backends.intune.errors import INTUNE_ERRORS, IntuneError
from integrations.backends.rest import (
    ErrorKinds,
    OAuth2ClientCredentials,
    Params,
    RestClient,
    ToolError,
)

GRAPH_URL = "https://graph.microsoft.com"
LOGIN_URL = "https://login.microsoftonline.com"
SCOPE = "https://graph.microsoft.com/.default"


class GraphClient(RestClient):
    """One tenant, one app registration. Build it in the composition root; ``close()``."""

    tool: ClassVar[str] = "Intune"
    errors: ClassVar[ErrorKinds] = INTUNE_ERRORS
    auth_hint: ClassVar[str] = (
        "check PATCHGATE_INTUNE_TENANT_ID, PATCHGATE_INTUNE_CLIENT_ID and"
        " PATCHGATE_INTUNE_CLIENT_SECRET"
    )
    forbidden_hint: ClassVar[str] = (
        "the app needs WindowsUpdates.ReadWrite.All and DeviceManagementManagedDevices.Read.All"
    )
    url_shape: ClassVar[str] = "Graph URL must be http(s)://host"

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
        login = urlsplit(login_url)
        if login.scheme not in ("http", "https") or not login.netloc:
            raise ValueError(f"the login URL must be http(s)://host, got {login_url!r}")
        self._token = OAuth2ClientCredentials(
            f"{login_url.rstrip('/')}/{tenant_id}/oauth2/v2.0/token",
            client_id,
            client_secret,
            scope=SCOPE,
            timeout=timeout,
        )
        super().__init__(
            graph_url,
            self._token,
            timeout=timeout,
            max_attempts=max_attempts,
            max_retry_wait=max_retry_wait,
            sleep=sleep,
        )
        self.tenant_id = tenant_id
        self.client_id = client_id

    def __repr__(self) -> str:
        return f"GraphClient({self.api_root}, tenant={self.tenant_id}, client={self.client_id})"

    @property
    def tokens_fetched(self) -> int:
        return self._token.fetched

    def error_detail(self, data: Any) -> str:
        err = data.get("error") if isinstance(data, Mapping) else None
        if not isinstance(err, Mapping):
            return super().error_detail(data)
        inner = err.get("innerError")
        rid = inner.get("request-id") if isinstance(inner, Mapping) else None
        said = f"{err.get('code') or ''}: {err.get('message') or ''}".strip(": ")
        return (said or "(no detail)") + (f" (request-id {rid})" if rid else "")

    def translate(self, method: str, path: str, status: int, data: Any) -> ToolError:
        error = super().translate(method, path, status, data)
        err = data.get("error") if isinstance(data, Mapping) else None
        if isinstance(error, IntuneError) and isinstance(err, Mapping) and err.get("code"):
            error.code = str(err["code"])
        return error

    async def post(self, path: str, body: Mapping[str, Any], *, idempotent: bool = False) -> Any:
        """A POST; ``idempotent`` only for actions that may be repeated (enrolling devices,
        adding audience members), never for one that creates something."""
        return (await self.request("POST", path, json=body, idempotent=idempotent)).data

    async def patch(self, path: str, body: Mapping[str, Any]) -> Any:
        return (await self.request("PATCH", path, json=body, idempotent=False)).data

    async def pages(self, path: str, params: Params | None = None) -> AsyncIterator[dict[str, Any]]:
        """Every item of a Graph collection, following ``@odata.nextLink``."""
        async for item in self.follow_next(path, params, items="value", next_key="@odata.nextLink"):
            if not isinstance(item, dict):
                raise IntuneError(f"Intune GET {path} listed a {type(item).__name__}")
            yield item
