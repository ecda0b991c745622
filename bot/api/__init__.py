"""``serve``'s HTTP API for decisions made from a terminal (``/api/v1``).

The CLI's decision commands (``rollout start|approve|reject|pause|resume|abort``,
``schedule run|freeze|unfreeze``, ``exception add|revoke``, ``emergency``) post here with a
personal token (``Authorization: Bearer pgt_…``; ``workflows.tokens``). The server
resolves the token to its Slack user, reads that user's groups from Slack (the Directory,
as for a click) and applies the same domain rules as Slack does, with operators and
admins from its own settings: nothing the client's environment says is trusted.

:class:`Api` registers the routes on ``bot.server``'s aiohttp application.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from bot.api import _operations as operations
from bot.api import _rollouts as rollouts
from bot.api._bodies import (
    ApproveBody,
    ControlBody,
    EmergencyBody,
    Empty,
    ExceptionBody,
    FreezeBody,
    RejectBody,
    RevokeBody,
    RunBody,
    StartBody,
)
from bot.api._deps import DEPS, ApiDeps, NoGroups
from bot.api._http import MAX_BODY, Call, endpoint, no_route
from workflows.models import RequestKind

PREFIX = "/api/v1"
ROLLOUT = PREFIX + "/rollouts/{rollout_id:[0-9]{1,18}}"


async def _whoami(call: Call, body: Empty) -> dict[str, Any]:
    return {
        "user": call.actor.user_id,
        "groups": sorted(call.actor.groups),
        "token_id": call.token_id,
        "operator": bool(call.actor.ids() & call.deps.operators),
    }


def _routes() -> list[tuple[str, str, Callable[[web.Request], Awaitable[web.Response]]]]:
    kinds = (RequestKind.PAUSE, RequestKind.RESUME, RequestKind.ABORT)
    control = {kind: rollouts.control(kind) for kind in kinds}
    return [
        ("GET", PREFIX + "/whoami", endpoint(Empty, _whoami)),
        ("POST", PREFIX + "/rollouts", endpoint(StartBody, rollouts.start, status=201)),
        ("POST", ROLLOUT + "/approve", endpoint(ApproveBody, rollouts.approve)),
        ("POST", ROLLOUT + "/reject", endpoint(RejectBody, rollouts.reject)),
        *(
            ("POST", f"{ROLLOUT}/{kind.value}", endpoint(ControlBody, handler))
            for kind, handler in control.items()
        ),
        ("POST", PREFIX + "/schedule/runs", endpoint(RunBody, operations.run, status=201)),
        ("POST", PREFIX + "/schedule/freeze", endpoint(FreezeBody, operations.freeze, status=201)),
        ("POST", PREFIX + "/schedule/unfreeze", endpoint(Empty, operations.unfreeze)),
        (
            "POST",
            PREFIX + "/exceptions",
            endpoint(ExceptionBody, operations.add_exception, status=201),
        ),
        (
            "POST",
            PREFIX + "/exceptions/{exception_id:[0-9]{1,18}}/revoke",
            endpoint(RevokeBody, operations.revoke_exception),
        ),
        ("POST", PREFIX + "/emergency", endpoint(EmergencyBody, operations.emergency, status=201)),
    ]


class Api:
    """The API's routes and what they need; ``bot.server.build_web_app`` calls
    :meth:`register` on its application."""

    def __init__(self, deps: ApiDeps) -> None:
        self.deps = deps

    def register(self, app: web.Application) -> None:
        app[DEPS] = self.deps
        for method, path, handler in _routes():
            app.router.add_route(method, path, handler)
        app.router.add_route("*", "/api/{tail:.*}", no_route)


__all__ = ["MAX_BODY", "PREFIX", "Api", "ApiDeps", "NoGroups"]
