"""Errors of the Intune backend, translated from HTTP at the adapter.

    PatchGateError
    └── IntuneError                  a Microsoft Graph call failed (``status``, ``code``)
        ├── IntuneUnavailable        transport error, timeout, 429 or 5xx after the retries
        ├── IntuneAuthError          401 (after one fresh token), or the token endpoint
        │                            refused the client (``invalid_client``)
        ├── IntuneForbidden          403 (also a Forbidden): the app lacks a permission
        ├── IntuneNotFound           404 (also a NotFound): no such deployment or asset
        └── IntuneRejected           400/409/422 (also an InputError), or a plan/batch the
                                     backend cannot run (unknown device, no catalog entry)

Messages carry the method, the path, Graph's ``error.code`` and ``error.message`` and
the ``request-id`` of ``innerError`` (what Microsoft support asks for), never the client
secret or a token.
"""

from __future__ import annotations

from workflows.errors import Forbidden, InputError, NotFound, PatchGateError


class IntuneError(PatchGateError):
    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.retry_after = retry_after
        super().__init__(message)


class IntuneUnavailable(IntuneError):
    pass


class IntuneAuthError(IntuneError):
    pass


class IntuneForbidden(IntuneError, Forbidden):
    pass


class IntuneNotFound(IntuneError, NotFound):
    pass


class IntuneRejected(IntuneError, InputError):
    pass
