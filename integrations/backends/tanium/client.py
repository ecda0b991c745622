"""An async client for Tanium's APIs, on the REST client base
(:class:`~integrations.backends.rest.RestClient`): the API Gateway (GraphQL) and the few
REST routes Tanium's own published integration uses for Patch deployments.

- ``POST {url}/plugin/products/gateway/graphql`` with ``{"query", "variables"}``;
- ``GET``/``POST`` ``{url}/api/v2/...`` (platform REST) and
  ``{url}/plugin/products/patch/v2/...`` (Patch REST).

Every call carries the API token in the ``session`` header, as Tanium documents it
(developer.tanium.com, "Authentication Methods": the value keeps its ``token-`` prefix),
not in ``Authorization``: the token goes into the session's default headers.

GraphQL: a query is idempotent and retried like a GET; a mutation is never retried
blindly. A 200 answer carrying an ``errors`` array is an error (:class:`TaniumQueryError`),
never data. REST: a GET is retried; a POST (it creates something) is sent once, except
after a 429, which the server refused before doing anything: that one is waited out
(``Retry-After``) and sent again, at most ``max_attempts`` times in all.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote

from pydantic import SecretStr

from integrations.backends.rest import ErrorKinds, RestClient, ToolUnavailable, backoff
from integrations.backends.tanium.errors import TANIUM_ERRORS, TaniumError, TaniumQueryError

GRAPHQL_PATH = "plugin/products/gateway/graphql"


def by_name(prefix: str, name: str) -> str:
    """A ``.../by-name/<name>`` route with the name escaped as one path segment."""
    return f"{prefix}/by-name/{quote(name, safe='')}"


class TaniumClient(RestClient):
    """One Tanium server (or Tanium Cloud instance), one API token."""

    tool: ClassVar[str] = "Tanium"
    errors: ClassVar[ErrorKinds] = TANIUM_ERRORS
    auth_hint: ClassVar[str] = "check PATCHGATE_TANIUM_TOKEN: its expiry and trusted addresses"
    forbidden_hint: ClassVar[str] = "the token's persona may not do this"
    paths_as_called: ClassVar[bool] = True

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
        super().__init__(
            url,
            None,
            verify_tls=verify_tls,
            ca_file=ca_file,
            timeout=timeout,
            max_attempts=max_attempts,
            max_retry_wait=max_retry_wait,
            headers={"session": token.get_secret_value()},
            sleep=sleep,
        )

    def __repr__(self) -> str:
        return f"TaniumClient({self.api_root.rstrip('/')})"

    def non_json(self, text: str) -> Any:
        return {"text": text[:500]}

    def error_detail(self, data: Any) -> str:
        if isinstance(data, Mapping):
            errors = data.get("errors")
            if isinstance(errors, list) and errors:
                return "; ".join(_error_text(e) for e in errors)
            for key in ("text", "message", "error"):
                if data.get(key):
                    return str(data[key])
        return str(data) if data else "(no detail)"

    # --- GraphQL ------------------------------------------------------------------------

    async def graphql(
        self, document: str, variables: Mapping[str, Any], *, mutation: bool = False
    ) -> dict[str, Any]:
        """The ``data`` of a Gateway answer; its ``errors`` raised as TaniumQueryError."""
        body = {"query": document, "variables": dict(variables)}
        answer = (await self.request("POST", GRAPHQL_PATH, json=body, idempotent=not mutation)).data
        errors = answer.get("errors")
        if errors:
            found = errors if isinstance(errors, list) else [errors]
            messages = tuple(_error_text(e) for e in found)
            raise TaniumQueryError(
                "Tanium Gateway answered errors: " + "; ".join(messages), messages=messages
            )
        data = answer.get("data")
        if not isinstance(data, dict):
            raise TaniumError("Tanium Gateway answered no data and no errors")
        return data

    # --- REST ---------------------------------------------------------------------------

    async def post(self, path: str, body: Mapping[str, Any]) -> Any:
        """A POST that creates something: sent once, or again only after a 429."""
        attempt = 0
        while True:
            attempt += 1
            try:
                return (await self.request("POST", path, json=body, idempotent=False)).data
            except ToolUnavailable as exc:
                if exc.status != 429 or attempt >= self._max_attempts:
                    raise
                wait = exc.retry_after if exc.retry_after is not None else backoff(attempt)
                if wait > self._max_retry_wait:
                    raise
                await self._sleep(wait)


def _error_text(error: Any) -> str:
    if isinstance(error, Mapping):
        text = str(error.get("message") or dict(error))[:300]
        path = error.get("path")
        return f"{text} (at {'.'.join(str(p) for p in path)})" if isinstance(path, list) else text
    return str(error)[:300]
