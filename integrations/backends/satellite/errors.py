"""Errors of the Satellite / Foreman + Katello backend, translated from HTTP at the adapter.

    ToolError (integrations.backends.rest; each class below also subclasses its generic kind)
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

from integrations.backends.rest.errors import (
    ErrorKinds,
    ToolAuthError,
    ToolError,
    ToolForbidden,
    ToolNotFound,
    ToolRejected,
    ToolUnavailable,
)


class SatelliteError(ToolError):
    pass


class SatelliteUnavailable(SatelliteError, ToolUnavailable):
    pass


class SatelliteLaunchUnknown(SatelliteUnavailable):
    pass


class SatelliteAuthError(SatelliteError, ToolAuthError):
    pass


class SatelliteForbidden(SatelliteError, ToolForbidden):
    pass


class SatelliteNotFound(SatelliteError, ToolNotFound):
    pass


class SatelliteRejected(SatelliteError, ToolRejected):
    pass


SATELLITE_ERRORS = ErrorKinds(
    base=SatelliteError,
    unavailable=SatelliteUnavailable,
    auth=SatelliteAuthError,
    forbidden=SatelliteForbidden,
    not_found=SatelliteNotFound,
    rejected=SatelliteRejected,
)
