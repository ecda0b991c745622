"""The HTTP side of the API: bearer tokens, bounded JSON bodies, JSON errors.

Every route is an :func:`endpoint`: the token is authenticated first (its use or its
refusal is audited and committed before anything else happens), then the body is read
(at most ``MAX_BODY`` bytes) and validated against the route's pydantic model, then the
handler runs as the token's Slack user. Errors are JSON ``{"error": "..."}``:

    400 the body or a field is not what the route takes (InputError)
    401 no token, or a token that is malformed, unknown, expired or revoked
    429 too many refused tokens from this address lately (bot.api._throttle)
    403 the domain refused the user (Forbidden; audited by the domain)
    404 no such rollout, gate, exception, plan or route (NotFound)
    409 the state refuses it (Conflict: no open gate, an active rollout, ...)
    413 the body is larger than MAX_BODY
    503 the database or Slack's user groups cannot be read now (try again)

Bad input never gives a 5xx; a defect is a JSON 500 with a reference the log also has.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import SQLAlchemyError

from bot.api._deps import DEPS, ApiDeps
from integrations.slack.directory import DirectoryUnavailable
from workflows import audit, tokens
from workflows.db import unit_of_work
from workflows.errors import Conflict, Forbidden, InputError, NotFound, PatchGateError
from workflows.gates import Actor

log = logging.getLogger("patchgate.api")

MAX_BODY = 16 * 1024  # bytes: the largest request any route takes is a few hundred
MAX_ROW_ID = 2**31 - 1  # a larger number names no row (INTEGER keys on PostgreSQL)
SOURCE = "api"  # the audit's and the votes' source for decisions made through the API

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Call:
    """One authenticated request: who is acting, and the validated body."""

    deps: ApiDeps
    actor: Actor
    token_id: str
    request: web.Request

    def row_id(self, name: str, what: str) -> int:
        """A numeric path part; beyond the database's range it names nothing (404)."""
        number = int(self.request.match_info[name])
        if number > MAX_ROW_ID:
            raise NotFound(f"{what} {number} does not exist")
        return number


def error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


_STATUS: tuple[tuple[type[PatchGateError], int], ...] = (
    (InputError, 400),
    (Forbidden, 403),
    (NotFound, 404),
    (Conflict, 409),
    (DirectoryUnavailable, 503),
)


def status_of(exc: PatchGateError) -> int:
    for kind, status in _STATUS:
        if isinstance(exc, kind):
            return status
    return 400


def bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return value.strip() or None


async def read_body(request: web.Request) -> bytes:
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_BODY, actual_size=request.content_length)
    body = b""
    while len(body) <= MAX_BODY:
        chunk = await request.content.read(MAX_BODY + 1 - len(body))
        if not chunk:
            return body
        body += chunk
    raise web.HTTPRequestEntityTooLarge(max_size=MAX_BODY, actual_size=len(body))


def parse(model: type[M], body: bytes) -> M:
    if not body.strip():
        body = b"{}"
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        raise InputError("the body is not JSON (UTF-8)") from None
    if not isinstance(data, dict):
        raise InputError("the body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise InputError(f"{where}: {first['msg']}") from None


async def _authenticate(
    deps: ApiDeps, request: web.Request
) -> tokens.TokenRefused | tuple[Actor, str]:
    """The acting user (with the user groups Slack says it is in) and the token's id."""
    route = request.match_info.route.resource
    where = f"{request.method} {route.canonical if route is not None else request.path[:100]}"
    async with unit_of_work(deps.db) as session:
        found = await tokens.authenticate(
            session, presented=bearer(request), route=where, now=deps.clock.now()
        )
        if isinstance(found, tokens.TokenRefused):
            return found
        user_id, token_id = found.user_id, found.public_id
    groups = await deps.directory.groups_of(user_id)
    return Actor(user_id=user_id, groups=groups, source=SOURCE), token_id


def endpoint(
    model: type[M], handler: Callable[[Call, M], Awaitable[dict[str, Any]]], *, status: int = 200
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """An aiohttp handler: authenticate, read and validate the body, run, answer JSON."""

    async def handle(request: web.Request) -> web.Response:
        deps = request.app[DEPS]
        who: tuple[Actor, str] | None = None
        address = request.remote or "unknown"
        try:
            wait = deps.throttle.retry_after(address)
            if wait is not None:
                return await _throttled(deps, request, address, wait)
            found = await _authenticate(deps, request)
            if isinstance(found, tokens.TokenRefused):
                deps.throttle.refused(address)
                return error(401, found.reason)
            who = found
            body = parse(model, await read_body(request))
            answer = await handler(Call(deps, who[0], who[1], request), body)
        except web.HTTPRequestEntityTooLarge:
            why = f"the body is larger than {MAX_BODY} bytes"
            return await _bad_input(deps, request, who, 413, why)
        except InputError as exc:
            return await _bad_input(deps, request, who, 400, str(exc))
        except PatchGateError as exc:
            return error(status_of(exc), str(exc))
        except (SQLAlchemyError, OSError) as exc:
            log.warning("API %s: the database is unavailable (%s)", request.path, exc)
            return error(503, f"the database is unavailable ({type(exc).__name__}); try again")
        except Exception:  # a defect: answered (JSON, with a reference) and logged
            ref = uuid.uuid4().hex[:8]
            log.exception("API %s %s failed (ref %s)", request.method, request.path, ref)
            return error(500, f"internal error (ref {ref}); the server's log has the details")
        return web.json_response(answer, status=status, dumps=_dumps)

    return handle


async def _throttled(deps: ApiDeps, request: web.Request, address: str, wait: int) -> web.Response:
    """429 before any database work; the first of a spell is audited (``api.throttled``)."""
    if deps.throttle.first_of_spell(address):
        log.warning(
            "API: %s refused %d tokens lately; holding it back", address, deps.throttle.limit
        )
        async with unit_of_work(deps.db) as session:
            await audit.append(
                session,
                kind="api.throttled",
                at=deps.clock.now(),
                actor=None,
                data={
                    "address": address[:100],
                    "route": f"{request.method} {request.path[:200]}",
                    "refusals": deps.throttle.limit,
                    "window_seconds": deps.throttle.window,
                    "retry_after": wait,
                },
            )
    response = error(429, f"too many refused tokens from this address; try again in {wait} s")
    response.headers["Retry-After"] = str(wait)
    return response


async def _bad_input(
    deps: ApiDeps, request: web.Request, who: tuple[Actor, str] | None, status: int, why: str
) -> web.Response:
    """A body or field the route does not take: refused before any rule ran, so audited
    here (``api.refused``; the rules audit their own refusals)."""
    if who is not None:
        async with unit_of_work(deps.db) as session:
            await audit.append(
                session,
                kind="api.refused",
                at=deps.clock.now(),
                actor=who[0].user_id,
                data={
                    "token_id": who[1],
                    "route": f"{request.method} {request.path[:200]}",
                    "status": status,
                    "reason": why[:500],
                },
            )
    return error(status, why)


def _dumps(data: Any) -> str:
    return json.dumps(data, default=str, sort_keys=True)


async def no_route(request: web.Request) -> web.Response:
    return error(404, f"no API route {request.method} {request.path[:200]}")
