"""Issuing, listing, revoking and checking personal tokens; each of these is audited.

Every function works in the caller's transaction and never commits.

Audit events (the token's public id, never its secret):
``token.created`` and ``token.revoked`` (actor: who ran the maintenance command),
``token.used`` (actor: the token's user; every authenticated API request) and
``token.refused`` (a token missing, malformed, unknown, wrong, expired or revoked).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from workflows import audit
from workflows.errors import Conflict, InputError, NotFound
from workflows.models import ApiToken
from workflows.tokens._secrets import matches, new_token, public_id_of, token_hash

USER_ID = re.compile(r"^[UW][A-Z0-9]{2,31}$")
MAX_LABEL = 200
DEFAULT_LIFETIME = dt.timedelta(days=90)
MAX_LIFETIME = dt.timedelta(days=366)


@dataclass(frozen=True)
class IssuedToken:
    row: ApiToken
    token: str  # the only time the token's text exists outside its holder's hands


@dataclass(frozen=True)
class TokenRefused:
    """Why a presented token does not authenticate (audited as ``token.refused``)."""

    reason: str
    public_id: str | None = None


def token_state(row: ApiToken, *, now: dt.datetime) -> str:
    if row.revoked_at is not None:
        return "revoked"
    if now >= row.expires_at:
        return "expired"
    return "active"


async def issue(
    session: AsyncSession,
    *,
    user_id: str,
    expires_at: dt.datetime,
    label: str | None,
    created_by: str,
    now: dt.datetime,
) -> IssuedToken:
    """A new token for a Slack user, valid until ``expires_at``."""
    if not USER_ID.fullmatch(user_id):
        raise InputError(f"--user {user_id!r} is not a Slack user ID (U… or W…)")
    if expires_at <= now:
        raise InputError("the token would be expired already: give a later --expires")
    if expires_at - now > MAX_LIFETIME:
        raise InputError(
            f"a token lives at most {MAX_LIFETIME.days} days: give an earlier --expires"
        )
    if label is not None and (len(label) > MAX_LABEL or not label.isprintable()):
        raise InputError(f"--label must be printable text of at most {MAX_LABEL} characters")
    token, public_id = new_token()
    row = ApiToken(
        public_id=public_id,
        user_id=user_id,
        label=label,
        secret_hash=token_hash(token),
        created_at=now,
        created_by=created_by,
        expires_at=expires_at,
    )
    session.add(row)
    await session.flush()
    await audit.append(
        session,
        kind="token.created",
        at=now,
        actor=created_by,
        data={
            "token_id": public_id,
            "user": user_id,
            "label": label,
            "expires_at": expires_at.isoformat(),
        },
    )
    return IssuedToken(row, token)


async def list_tokens(session: AsyncSession) -> list[ApiToken]:
    return list(await session.scalars(sa.select(ApiToken).order_by(ApiToken.id)))


async def revoke(session: AsyncSession, *, public_id: str, by: str, now: dt.datetime) -> ApiToken:
    """Revoke a token at once; it is refused from its next request on."""
    row = await session.scalar(
        sa.select(ApiToken).where(ApiToken.public_id == public_id).with_for_update()
    )
    if row is None:
        raise NotFound(f"no token {public_id!r} (see `patchgate token list`)")
    if row.revoked_at is not None:
        when = f"{row.revoked_at:%Y-%m-%d %H:%M}Z"
        raise Conflict(f"token {public_id} was revoked already, at {when}")
    row.revoked_at = now
    row.revoked_by = by
    await audit.append(
        session,
        kind="token.revoked",
        at=now,
        actor=by,
        data={"token_id": public_id, "user": row.user_id},
    )
    return row


async def authenticate(
    session: AsyncSession, *, presented: str | None, route: str, now: dt.datetime
) -> ApiToken | TokenRefused:
    """The token ``presented`` (from an ``Authorization: Bearer`` header), if it is known,
    matches its stored hash, and is neither expired nor revoked; its use is recorded.
    Otherwise why not, audited."""
    refusal = await _check(session, presented=presented, now=now)
    if isinstance(refusal, TokenRefused):
        await audit.append(
            session,
            kind="token.refused",
            at=now,
            actor=None,
            data={"token_id": refusal.public_id, "reason": refusal.reason, "route": route},
        )
        return refusal
    row = refusal
    row.last_used_at = now
    await audit.append(
        session,
        kind="token.used",
        at=now,
        actor=row.user_id,
        data={"token_id": row.public_id, "route": route},
    )
    return row


async def _check(
    session: AsyncSession, *, presented: str | None, now: dt.datetime
) -> ApiToken | TokenRefused:
    if not presented:
        return TokenRefused("no token (send Authorization: Bearer <token>)")
    public_id = public_id_of(presented)
    if public_id is None:
        return TokenRefused("not a PatchGate token")
    row = await session.scalar(
        sa.select(ApiToken).where(ApiToken.public_id == public_id).with_for_update()
    )
    if not matches(presented, row.secret_hash if row is not None else None) or row is None:
        return TokenRefused("unknown token", public_id)
    state = token_state(row, now=now)
    if state != "active":
        return TokenRefused(f"token {public_id} is {state}", public_id)
    return row
