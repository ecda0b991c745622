"""The generic error tree of the fleet-tool REST clients, translated from HTTP.

    PatchGateError
    └── ToolError                 a tool API call failed (``status``, ``retry_after``, ``fields``)
        ├── ToolUnavailable       transport error, timeout, 429 or 5xx (after the retries)
        ├── ToolAuthError         401, or the OAuth2 token endpoint refused the client
        ├── ToolForbidden         403 (also a Forbidden)
        ├── ToolNotFound          404 (also a NotFound)
        └── ToolRejected          400/409/422 (also an InputError): the tool refused the request

Each tool subclasses these with its own names (``AwxNotFound(AwxError, ToolNotFound)``)
and hands the set to its client as an :class:`ErrorKinds`, so that the backends can catch
either the tool's class or the generic one. Messages carry the method, the path and the
tool's error text only, never a credential.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, overload

from workflows.errors import Forbidden, InputError, NotFound, PatchGateError


class ToolError(PatchGateError):
    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        fields: Mapping[str, Any] | None = None,
    ) -> None:
        self.status = status
        self.retry_after = retry_after
        self.fields: Mapping[str, Any] = dict(fields or {})
        super().__init__(message)


class ToolUnavailable(ToolError):
    pass


class ToolAuthError(ToolError):
    pass


class ToolForbidden(ToolError, Forbidden):
    pass


class ToolNotFound(ToolError, NotFound):
    pass


class ToolRejected(ToolError, InputError):
    pass


@dataclass(frozen=True)
class ErrorKinds:
    """The classes one tool raises for each kind (its own subclasses of the generic ones)."""

    base: type[ToolError] = ToolError
    unavailable: type[ToolUnavailable] = ToolUnavailable
    auth: type[ToolAuthError] = ToolAuthError
    forbidden: type[ToolForbidden] = ToolForbidden
    not_found: type[ToolNotFound] = ToolNotFound
    rejected: type[ToolRejected] = ToolRejected

    @overload
    def like(self, error: ToolUnavailable) -> ToolUnavailable: ...
    @overload
    def like(self, error: ToolError) -> ToolError: ...
    def like(self, error: ToolError) -> ToolError:
        """``error`` as this tool's class of the same kind (an auth provider's error)."""
        if isinstance(error, self.base):
            return error
        kind: type[ToolError] = self.base
        pairs: tuple[tuple[type[ToolError], type[ToolError]], ...] = (
            (ToolUnavailable, self.unavailable),
            (ToolAuthError, self.auth),
            (ToolForbidden, self.forbidden),
            (ToolNotFound, self.not_found),
            (ToolRejected, self.rejected),
        )
        for generic, mine in pairs:
            if isinstance(error, generic):
                kind = mine
                break
        mapped = kind(
            str(error), status=error.status, retry_after=error.retry_after, fields=error.fields
        )
        mapped.__cause__ = error.__cause__
        return mapped
