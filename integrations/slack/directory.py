"""The Directory port over Slack user groups (``usergroups.users.list``), cached briefly.

``groups_of(user)`` answers for the groups PatchGate cares about (operator groups and
the approver groups of active rollouts), given by ``candidates``; each group's members
are fetched once per ``ttl`` seconds. Members are matched by immutable user ID.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from workflows.errors import PatchGateError

DEFAULT_TTL = 60.0


class DirectoryUnavailable(PatchGateError):
    """Group membership could not be read from Slack (try again)."""


class SlackDirectory:
    def __init__(
        self,
        client: AsyncWebClient,
        candidates: Callable[[], Awaitable[frozenset[str]]],
        *,
        ttl: float = DEFAULT_TTL,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.candidates = candidates
        self.ttl = ttl
        self._monotonic = monotonic
        self._members: dict[str, tuple[float, frozenset[str]]] = {}

    async def members(self, group_id: str) -> frozenset[str]:
        cached = self._members.get(group_id)
        now = self._monotonic()
        if cached is not None and now - cached[0] < self.ttl:
            return cached[1]
        try:
            response = await self.client.usergroups_users_list(usergroup=group_id)
        except SlackApiError as exc:
            error = exc.response.get("error") if exc.response is not None else None
            if error in ("no_such_subteam", "subteam_not_found"):
                users: frozenset[str] = frozenset()
                self._members[group_id] = (now, users)
                return users
            raise DirectoryUnavailable(f"cannot read user group {group_id}: {error}") from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise DirectoryUnavailable(
                f"cannot read user group {group_id}: {type(exc).__name__}"
            ) from exc
        users = frozenset(str(u) for u in response.get("users") or [])
        self._members[group_id] = (now, users)
        return users

    async def groups_of(self, user_id: str) -> frozenset[str]:
        groups = sorted(g for g in await self.candidates() if g.startswith("S"))
        found = set()
        for group in groups:
            if user_id in await self.members(group):
                found.add(group)
        return frozenset(found)

    async def user_by_email(self, email: str) -> str | None:
        """The Slack user ID with this e-mail address (``users.lookupByEmail``, scope
        ``users:read.email``), or None if Slack knows no such user."""
        try:
            response = await self.client.users_lookupByEmail(email=email)
        except SlackApiError as exc:
            error = exc.response.get("error") if exc.response is not None else None
            if error == "users_not_found":
                return None
            raise DirectoryUnavailable(f"cannot look up a user by e-mail: {error}") from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise DirectoryUnavailable(
                f"cannot look up a user by e-mail: {type(exc).__name__}"
            ) from exc
        user = response.get("user") or {}
        return str(user["id"]) if user.get("id") else None
