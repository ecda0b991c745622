"""Errors of the NinjaOne backend, translated from HTTP at the adapter.

    PatchGateError
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

from workflows.errors import Forbidden, InputError, NotFound, PatchGateError


class NinjaOneError(PatchGateError):
    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        self.status = status
        self.retry_after = retry_after
        super().__init__(message)


class NinjaOneUnavailable(NinjaOneError):
    pass


class NinjaOneAuthError(NinjaOneError):
    pass


class NinjaOneForbidden(NinjaOneError, Forbidden):
    pass


class NinjaOneNotFound(NinjaOneError, NotFound):
    pass


class NinjaOneRejected(NinjaOneError, InputError):
    pass
