"""Auth providers of the REST client base: what goes into ``Authorization``.

A provider is anything with ``async def header() -> str`` (the header's value) and
``def invalidate()`` (forget a cached credential after the API answered 401) and a
``refreshes`` flag (whether a 401 is worth one more try with a fresh credential).

- :class:`BasicAuth`: a user and its password or token (RFC 7617);
- :class:`BearerToken`: a static token or API key (``Bearer <token>``);
- :class:`OAuth2ClientCredentials`: RFC 6749 §4.4, a form POST of ``grant_type=
  client_credentials`` to the token URL, the token cached until shortly before its
  ``expires_in``; the token endpoint's ``error``/``error_description`` surface as a
  :class:`ToolAuthError`, never the secret.

Secrets live in ``SecretStr`` and appear in no repr, log line or message.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import ssl
import time
from collections.abc import Callable
from typing import Any, Protocol

import aiohttp
from pydantic import SecretStr

from integrations.backends.rest.errors import ToolAuthError, ToolError, ToolUnavailable

log = logging.getLogger(__name__)


class AuthProvider(Protocol):
    refreshes: bool

    async def header(self) -> str: ...

    def invalidate(self) -> None: ...


class BasicAuth:
    refreshes = False

    def __init__(self, user: str, password: SecretStr) -> None:
        raw = f"{user}:{password.get_secret_value()}".encode()
        self._value = SecretStr(f"Basic {base64.b64encode(raw).decode()}")
        self.user = user

    def __repr__(self) -> str:
        return f"BasicAuth(user={self.user!r})"

    async def header(self) -> str:
        return self._value.get_secret_value()

    def invalidate(self) -> None:
        pass


class BearerToken:
    refreshes = False

    def __init__(self, token: SecretStr) -> None:
        self._token = token

    def __repr__(self) -> str:
        return "BearerToken(**********)"

    async def header(self) -> str:
        return f"Bearer {self._token.get_secret_value()}"

    def invalidate(self) -> None:
        pass


class OAuth2ClientCredentials:
    """A token from ``token_url`` for ``client_id``/``client_secret``, cached until expiry.

    ``scope`` (Microsoft Graph: ``https://graph.microsoft.com/.default``) and/or
    ``audience`` (Auth0-style servers) go into the form when given. The token is renewed
    ``skew`` seconds before ``expires_in`` runs out (a missing ``expires_in``: one hour).
    """

    refreshes = True

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: SecretStr,
        *,
        scope: str | None = None,
        audience: str | None = None,
        skew: float = 60.0,
        timeout: float = 30.0,
        tls: ssl.SSLContext | bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.token_url = token_url
        self.client_id = client_id
        self._secret = client_secret
        self._scope = scope
        self._audience = audience
        self._skew = skew
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._tls = tls
        self._clock = clock
        self._token: SecretStr | None = None
        self._expires = 0.0
        self._lock = asyncio.Lock()
        self._session: aiohttp.ClientSession | None = None
        self.fetched = 0  # how many tokens were fetched (for tests and health)

    def __repr__(self) -> str:
        return f"OAuth2ClientCredentials({self.token_url}, client_id={self.client_id!r})"

    def use_tls(self, tls: ssl.SSLContext | bool) -> None:
        """Verify the token endpoint as the API is (the client that owns this calls it)."""
        self._tls = tls

    async def header(self) -> str:
        async with self._lock:
            if self._token is None or self._clock() >= self._expires:
                await self._fetch()
            assert self._token is not None
            return f"Bearer {self._token.get_secret_value()}"

    def invalidate(self) -> None:
        self._token = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _fetch(self) -> None:
        form = {
            "grant_type": "client_credentials",
            "client_id": self.client_id,
            "client_secret": self._secret.get_secret_value(),
        }
        if self._scope:
            form["scope"] = self._scope
        if self._audience:
            form["audience"] = self._audience
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=self._timeout, connector=aiohttp.TCPConnector(ssl=self._tls)
            )
        where = f"OAuth2 token request to {self.token_url}"
        try:
            async with self._session.post(
                self.token_url, data=form, headers={"Accept": "application/json"}
            ) as resp:
                status = resp.status
                try:
                    data = await resp.json(content_type=None)
                except ValueError:
                    data = None
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            kind = "timed out" if isinstance(exc, TimeoutError) else type(exc).__name__
            raise ToolUnavailable(f"{where}: {kind}") from exc
        body = data if isinstance(data, dict) else {}
        if status >= 300 or not isinstance(body.get("access_token"), str):
            raise self._refused(where, status, body)
        expires_in = body.get("expires_in", 3600)
        try:
            lifetime = float(expires_in)
        except (TypeError, ValueError):
            lifetime = 3600.0
        self._token = SecretStr(body["access_token"])
        self._expires = self._clock() + max(0.0, lifetime - self._skew)
        self.fetched += 1
        log.debug("OAuth2 token for %s fetched (%.0fs)", self.client_id, lifetime)

    def _refused(self, where: str, status: int, body: dict[str, Any]) -> ToolError:
        error = str(body.get("error") or "")
        description = str(body.get("error_description") or "")
        secret = self._secret.get_secret_value()
        if secret:
            description = description.replace(secret, "**********")
        detail = ": ".join(p for p in (error, description) if p) or "no access_token"
        message = f"{where} answered {status}: {detail} (check the client id and secret)"
        if status in (429,) or status >= 500:
            return ToolUnavailable(message, status=status)
        return ToolAuthError(message, status=status, fields={"error": error} if error else None)
