"""Errors of the Tanium backend, translated from HTTP and GraphQL at the adapter.

    ToolError (integrations.backends.rest; each class below also subclasses its generic kind)
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

from integrations.backends.rest.errors import (
    ErrorKinds,
    ToolAuthError,
    ToolError,
    ToolForbidden,
    ToolNotFound,
    ToolRejected,
    ToolUnavailable,
)


class TaniumError(ToolError):
    pass


class TaniumUnavailable(TaniumError, ToolUnavailable):
    pass


class TaniumAuthError(TaniumError, ToolAuthError):
    pass


class TaniumForbidden(TaniumError, ToolForbidden):
    pass


class TaniumNotFound(TaniumError, ToolNotFound):
    pass


class TaniumRejected(TaniumError, ToolRejected):
    pass


class TaniumQueryError(TaniumError):
    """The Gateway answered 200 with an ``errors`` array (an expired cursor, an unknown
    field, a sensor the token may not read): ``messages`` holds Tanium's texts."""

    def __init__(self, message: str, *, messages: tuple[str, ...] = ()) -> None:
        self.messages = messages
        super().__init__(message, status=200)


TANIUM_ERRORS = ErrorKinds(
    base=TaniumError,
    unavailable=TaniumUnavailable,
    auth=TaniumAuthError,
    forbidden=TaniumForbidden,
    not_found=TaniumNotFound,
    rejected=TaniumRejected,
)
