"""An async client for the Foreman / Katello REST API v2 (Red Hat Satellite).

Built on :class:`~integrations.backends.rest.RestClient`: HTTP Basic auth (a user and its
password or personal access token) over HTTPS, verified against the system CA store or
``ca_file`` (Satellite's own CA, ``katello-server-ca.crt``); a timeout per call; Foreman's
paging (``page``/``per_page``, answers carrying ``total``, ``subtotal``, ``page``,
``per_page``, ``results``) and its errors (``{"error": {"message": ...}}``, 422
``full_messages``) translated into :mod:`.errors`.

Retries: a GET is retried on a transport error, a timeout, 429, 502, 503 and 504, at most
``max_attempts`` times, waiting what ``Retry-After`` says or a short backoff; a
``Retry-After`` beyond ``max_retry_wait`` is raised, not slept through. A POST (a job
invocation) is never retried here: the backend looks for its key before posting again.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

from pydantic import SecretStr

from integrations.backends.rest import BasicAuth, ErrorKinds, Params, RestClient
from integrations.backends.satellite.errors import SATELLITE_ERRORS, SatelliteError

PER_PAGE = 100


class SatelliteClient(RestClient):
    """One Satellite server, one user. Build it in the composition root; ``close()`` at exit."""

    tool: ClassVar[str] = "Satellite"
    errors: ClassVar[ErrorKinds] = SATELLITE_ERRORS
    rejected_statuses: ClassVar[frozenset[int]] = frozenset({400, 422})
    auth_hint: ClassVar[str] = "check PATCHGATE_SATELLITE_USER and PATCHGATE_SATELLITE_PASSWORD"
    paths_as_called: ClassVar[bool] = True

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
        super().__init__(
            url,
            BasicAuth(user, password),
            verify_tls=verify_tls,
            ca_file=ca_file,
            timeout=timeout,
            max_attempts=max_attempts,
            max_retry_wait=max_retry_wait,
            headers={"Content-Type": "application/json"},
            sleep=sleep,
        )
        self._per_page = max(1, per_page)

    def __repr__(self) -> str:
        return f"SatelliteClient({self.api_root.rstrip('/')})"

    def non_json(self, text: str) -> Any:
        return {"error": {"message": text[:500]}}

    def error_detail(self, data: Any) -> str:
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
        return detail or "(no message)"

    async def get(self, path: str, params: Params | None = None) -> dict[str, Any]:
        data: dict[str, Any] = await super().get(path, params)
        return data

    async def post(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        answer = await self.request("POST", path, json=body, idempotent=False)
        data: dict[str, Any] = answer.data
        return data

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
