"""Errors of the AWX / Automation Platform backend, translated from HTTP at the adapter.

    PatchGateError
    └── AwxError                    an AWX API call failed (``status``, ``detail``)
        ├── AwxUnavailable          transport error, timeout, 429 or 5xx after the retries
        │   └── AwxLaunchUnknown    a launch's answer was lost and AWX could not be searched
        │                           for its key: the job may exist (find it, do not resubmit)
        ├── AwxAuthError            401: the token is missing, wrong or expired
        ├── AwxForbidden            403 (also a Forbidden): the token's user may not do it
        ├── AwxNotFound             404 (also a NotFound): no such template, job, inventory
        └── AwxRejected             400/405 (also an InputError): AWX refused the request
                                    (field errors in ``fields``) or the job template is
                                    not set up as PatchGate needs (prompts on launch)

The token never appears in a message: messages carry the method, the path and AWX's
``detail`` or field errors only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from workflows.errors import Forbidden, InputError, NotFound, PatchGateError


class AwxError(PatchGateError):
    def __init__(
        self, message: str, *, status: int | None = None, fields: Mapping[str, Any] | None = None
    ) -> None:
        self.status = status
        self.fields: Mapping[str, Any] = dict(fields or {})
        super().__init__(message)


class AwxUnavailable(AwxError):
    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        self.retry_after = retry_after
        super().__init__(message, status=status)


class AwxLaunchUnknown(AwxUnavailable):
    pass


class AwxAuthError(AwxError):
    pass


class AwxForbidden(AwxError, Forbidden):
    pass


class AwxNotFound(AwxError, NotFound):
    pass


class AwxRejected(AwxError, InputError):
    pass
