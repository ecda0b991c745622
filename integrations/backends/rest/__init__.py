"""The REST client base of the fleet-tool backends: one request path, retries, errors, auth.

A tool's client subclasses :class:`RestClient`, names its errors in an :class:`ErrorKinds`
(subclasses of the generic :class:`ToolError` tree) and picks an auth provider.
"""

from integrations.backends.rest.auth import (
    AuthProvider,
    BasicAuth,
    BearerToken,
    OAuth2ClientCredentials,
)
from integrations.backends.rest.client import (
    RETRY_STATUSES,
    Params,
    RestClient,
    RestResponse,
    backoff,
    parse_retry_after,
)
from integrations.backends.rest.errors import (
    ErrorKinds,
    ToolAuthError,
    ToolError,
    ToolForbidden,
    ToolNotFound,
    ToolRejected,
    ToolUnavailable,
)

__all__ = [
    "RETRY_STATUSES",
    "AuthProvider",
    "BasicAuth",
    "BearerToken",
    "ErrorKinds",
    "OAuth2ClientCredentials",
    "Params",
    "RestClient",
    "RestResponse",
    "ToolAuthError",
    "ToolError",
    "ToolForbidden",
    "ToolNotFound",
    "ToolRejected",
    "ToolUnavailable",
    "backoff",
    "parse_retry_after",
]
