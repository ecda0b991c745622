"""The token's text: ``pgt_<public id>_<secret>``, and the hash that is all the database keeps.

The public id (12 hex characters) names a token in lists and audit events; the secret
(32 random bytes, URL-safe base64) is never stored: the database holds the SHA-256 of the
whole token, compared in constant time. A fast hash is enough because the secret is
random and long (256 bits); there is nothing to guess a dictionary word from.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

PREFIX = "pgt"
PUBLIC_ID_BYTES = 6  # 12 hex characters
SECRET_BYTES = 32
MAX_TOKEN_LENGTH = 128  # longer text is not a token (and is not hashed)
_SHAPE = re.compile(r"^pgt_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
# compared against when no token has the presented public id, so that an unknown id
# costs the same hash and comparison as a wrong secret
_NO_TOKEN_HASH = hashlib.sha256(b"no such token").hexdigest()


def new_token() -> tuple[str, str]:
    """A fresh token and its public id."""
    public_id = secrets.token_hex(PUBLIC_ID_BYTES)
    return f"{PREFIX}_{public_id}_{secrets.token_urlsafe(SECRET_BYTES)}", public_id


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def public_id_of(presented: str) -> str | None:
    """The public id of text shaped like a token, else None."""
    if len(presented) > MAX_TOKEN_LENGTH:
        return None
    match = _SHAPE.fullmatch(presented)
    return match.group(1) if match else None


def matches(presented: str, stored_hash: str | None) -> bool:
    """Whether ``presented`` hashes to ``stored_hash``, compared in constant time."""
    expected = stored_hash if stored_hash is not None else _NO_TOKEN_HASH
    return hmac.compare_digest(token_hash(presented), expected) and stored_hash is not None
