"""Personal API tokens: a token acts as one Slack user on ``serve``'s HTTP API.

An administrator (whoever holds the database credentials) issues one for a Slack user
with ``patchgate token create``; it is shown once and stored as a SHA-256 hash. ``serve``
authenticates each API request with it (constant-time comparison, expiry, revocation)
and applies the same rules to that user as to a Slack click. Issuing, revoking, every
use and every refusal are audit events carrying the token's public id, never its secret.
"""

from workflows.tokens._secrets import PREFIX, public_id_of
from workflows.tokens._store import (
    DEFAULT_LIFETIME,
    MAX_LIFETIME,
    IssuedToken,
    TokenRefused,
    authenticate,
    issue,
    list_tokens,
    revoke,
    token_state,
)

__all__ = [
    "DEFAULT_LIFETIME",
    "MAX_LIFETIME",
    "PREFIX",
    "IssuedToken",
    "TokenRefused",
    "authenticate",
    "issue",
    "list_tokens",
    "public_id_of",
    "revoke",
    "token_state",
]
