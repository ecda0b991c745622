"""Errors of the Tanium backend, translated from HTTP and GraphQL at the adapter.

    PatchGateError
    └── TaniumError                  a Tanium API call failed (``status``)
        ├── TaniumUnavailable        transport error, timeout, 429 or 5xx after the retries
        ├── TaniumAuthError          401: the API token is missing, wrong, expired or not
        │                            allowed from this address (the token's trusted IPs)
        ├── TaniumForbidden          403 (also a Forbidden): the token's persona may not do it
        ├── TaniumNotFound           404 (also a NotFound): no such group, content set, ...
        ├── TaniumQueryError         a 200 answer of the Gateway carrying GraphQL ``errors``
        └── TaniumRejected           400/422 (also an InputError), or a plan/batch the backend
                                     cannot run (an unknown endpoint, an unsafe name, an
                                     action Tanium's public API offers no way to do)

The API token never appears in a message: messages carry the method, the path and
Tanium's own error text only.
"""

from __future__ import annotations

from workflows.errors import Forbidden, InputError, NotFound, PatchGateError


class TaniumError(PatchGateError):
    def __init__(self, message: str, *, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)


class TaniumUnavailable(TaniumError):
    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        self.retry_after = retry_after
        super().__init__(message, status=status)


class TaniumAuthError(TaniumError):
    pass


class TaniumForbidden(TaniumError, Forbidden):
    pass


class TaniumNotFound(TaniumError, NotFound):
    pass


class TaniumQueryError(TaniumError):
    """The Gateway answered 200 with an ``errors`` array (an expired cursor, an unknown
    field, a sensor the token may not read): ``messages`` holds Tanium's texts."""

    def __init__(self, message: str, *, messages: tuple[str, ...] = ()) -> None:
        self.messages = messages
        super().__init__(message, status=200)


class TaniumRejected(TaniumError, InputError):
    pass
