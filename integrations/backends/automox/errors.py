"""Errors of the Automox backend, translated from HTTP at the adapter.

    ToolError (integrations.backends.rest; each class below also subclasses its generic kind)
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

from integrations.backends.rest.errors import (
    ErrorKinds,
    ToolAuthError,
    ToolError,
    ToolForbidden,
    ToolNotFound,
    ToolRejected,
    ToolUnavailable,
)


class AutomoxError(ToolError):
    pass


class AutomoxUnavailable(AutomoxError, ToolUnavailable):
    pass


class AutomoxAuthError(AutomoxError, ToolAuthError):
    pass


class AutomoxForbidden(AutomoxError, ToolForbidden):
    pass


class AutomoxNotFound(AutomoxError, ToolNotFound):
    pass


class AutomoxRejected(AutomoxError, ToolRejected):
    pass


AUTOMOX_ERRORS = ErrorKinds(
    base=AutomoxError,
    unavailable=AutomoxUnavailable,
    auth=AutomoxAuthError,
    forbidden=AutomoxForbidden,
    not_found=AutomoxNotFound,
    rejected=AutomoxRejected,
)
