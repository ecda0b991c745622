"""Errors of the Automox backend, translated from HTTP at the adapter.

    PatchGateError
    └── AutomoxError                 an Automox API call failed (``status``)
        ├── AutomoxUnavailable       transport error, timeout, 429 or 5xx after the retries
        ├── AutomoxAuthError         401: the API key is missing, wrong or revoked
        ├── AutomoxForbidden         403 (also a Forbidden): the key may not do it (or the org)
        ├── AutomoxNotFound          404 (also a NotFound): no such device
        └── AutomoxRejected          400/422 (also an InputError), or a plan/batch the
                                     backend cannot run (unknown device, unsafe name)

The API key never appears in a message: messages carry the method, the path and
Automox's error text only.
"""

from __future__ import annotations

from workflows.errors import Forbidden, InputError, NotFound, PatchGateError


class AutomoxError(PatchGateError):
    def __init__(self, message: str, *, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)


class AutomoxUnavailable(AutomoxError):
    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        self.retry_after = retry_after
        super().__init__(message, status=status)


class AutomoxAuthError(AutomoxError):
    pass


class AutomoxForbidden(AutomoxError, Forbidden):
    pass


class AutomoxNotFound(AutomoxError, NotFound):
    pass


class AutomoxRejected(AutomoxError, InputError):
    pass
