"""Errors of the Intune backend: the REST base's tree under Intune's names.

    PatchGateError
    └── ToolError
        └── IntuneError              a Microsoft Graph call failed (``status``, ``code``)
            ├── IntuneUnavailable    transport error, timeout, 429 or 5xx after the retries
            ├── IntuneAuthError      401 (after one fresh token), or the token endpoint
            │                        refused the client (``invalid_client``)
            ├── IntuneForbidden      403 (also a Forbidden): the app lacks a permission
            ├── IntuneNotFound       404 (also a NotFound): no such deployment or asset
            └── IntuneRejected       400/409/422 (also an InputError), or a plan/batch the
                                     backend cannot run (unknown device, no catalog entry)

Messages carry the method, the path, Graph's ``error.code`` and ``error.message`` and
the ``request-id`` of ``innerError`` (what Microsoft support asks for), never the client
secret or a token. ``code`` is Graph's ``error.code`` when it gave one.
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


class IntuneError(ToolError):
    code: str | None = None


class IntuneUnavailable(IntuneError, ToolUnavailable):
    pass


class IntuneAuthError(IntuneError, ToolAuthError):
    pass


class IntuneForbidden(IntuneError, ToolForbidden):
    pass


class IntuneNotFound(IntuneError, ToolNotFound):
    pass


class IntuneRejected(IntuneError, ToolRejected):
    pass


INTUNE_ERRORS = ErrorKinds(
    base=IntuneError,
    unavailable=IntuneUnavailable,
    auth=IntuneAuthError,
    forbidden=IntuneForbidden,
    not_found=IntuneNotFound,
    rejected=IntuneRejected,
)
