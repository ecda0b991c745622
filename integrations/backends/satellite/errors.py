"""Errors of the Satellite / Foreman + Katello backend, translated from HTTP at the adapter.

    PatchGateError
    └── SatelliteError                a Foreman API call failed (``status``, ``fields``)
        ├── SatelliteUnavailable      transport error, timeout, 429 or 5xx after the retries
        │   └── SatelliteLaunchUnknown  a job invocation's answer was lost and Foreman could
        │                             not be searched for its key: it may exist (find it)
        ├── SatelliteAuthError        401: wrong user or password / personal access token
        ├── SatelliteForbidden        403 (also a Forbidden): the user lacks the permission
        ├── SatelliteNotFound         404 (also a NotFound): no such host, job, task
        └── SatelliteRejected         400/422 (also an InputError): Foreman refused the
                                      request (``error.message`` / ``full_messages``), or the
                                      plan asks for something this backend cannot do

Credentials never appear in a message: messages carry the method, the path and Foreman's
``error.message`` only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from workflows.errors import Forbidden, InputError, NotFound, PatchGateError


class SatelliteError(PatchGateError):
    def __init__(
        self, message: str, *, status: int | None = None, fields: Mapping[str, Any] | None = None
    ) -> None:
        self.status = status
        self.fields: Mapping[str, Any] = dict(fields or {})
        super().__init__(message)


class SatelliteUnavailable(SatelliteError):
    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        self.retry_after = retry_after
        super().__init__(message, status=status)


class SatelliteLaunchUnknown(SatelliteUnavailable):
    pass


class SatelliteAuthError(SatelliteError):
    pass


class SatelliteForbidden(SatelliteError, Forbidden):
    pass


class SatelliteNotFound(SatelliteError, NotFound):
    pass


class SatelliteRejected(SatelliteError, InputError):
    pass
