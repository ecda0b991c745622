"""Errors of the NinjaOne backend, the REST base's kinds under NinjaOne's names.

    ToolError (integrations.backends.rest)
    └── NinjaOneError                an API call failed (``status``)
        ├── NinjaOneUnavailable      transport error, timeout, 429 or 5xx after the retries
        ├── NinjaOneAuthError        401 after a fresh token, or the token endpoint refused
        │                            the client (wrong id/secret)
        ├── NinjaOneForbidden        403 (also a Forbidden): the token's scope does not allow it
        ├── NinjaOneNotFound         404 (also a NotFound): no such device
        └── NinjaOneRejected         400/409/422 (also an InputError), or a batch the backend
                                     refuses (unknown device, a pinned set the apply endpoint
                                     cannot install exactly)

The client secret and the access token never appear in a message: messages carry the
method, the path and NinjaOne's error text only.
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


class NinjaOneError(ToolError):
    pass


class NinjaOneUnavailable(NinjaOneError, ToolUnavailable):
    pass


class NinjaOneAuthError(NinjaOneError, ToolAuthError):
    pass


class NinjaOneForbidden(NinjaOneError, ToolForbidden):
    pass


class NinjaOneNotFound(NinjaOneError, ToolNotFound):
    pass


class NinjaOneRejected(NinjaOneError, ToolRejected):
    pass


NINJAONE_ERRORS = ErrorKinds(
    base=NinjaOneError,
    unavailable=NinjaOneUnavailable,
    auth=NinjaOneAuthError,
    forbidden=NinjaOneForbidden,
    not_found=NinjaOneNotFound,
    rejected=NinjaOneRejected,
)
