"""Errors of the AWX / Automation Platform backend, translated from HTTP at the adapter.

    ToolError (integrations.backends.rest; each class below also subclasses its generic kind)
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

from integrations.backends.rest.errors import (
    ErrorKinds,
    ToolAuthError,
    ToolError,
    ToolForbidden,
    ToolNotFound,
    ToolRejected,
    ToolUnavailable,
)


class AwxError(ToolError):
    pass


class AwxUnavailable(AwxError, ToolUnavailable):
    pass


class AwxLaunchUnknown(AwxUnavailable):
    pass


class AwxAuthError(AwxError, ToolAuthError):
    pass


class AwxForbidden(AwxError, ToolForbidden):
    pass


class AwxNotFound(AwxError, ToolNotFound):
    pass


class AwxRejected(AwxError, ToolRejected):
    pass


AWX_ERRORS = ErrorKinds(
    base=AwxError,
    unavailable=AwxUnavailable,
    auth=AwxAuthError,
    forbidden=AwxForbidden,
    not_found=AwxNotFound,
    rejected=AwxRejected,
)
