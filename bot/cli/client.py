"""The CLI's side of ``serve``'s decisions API (``bot.api``): every decision a person
makes from a terminal is a request to PATCHGATE_SERVER_URL with PATCHGATE_TOKEN, their
personal token. The server decides who they are and what they may do; nothing in this
process's environment (operators, admins, the OS user) counts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

import aiohttp

from bot.cli.common import print_json
from bot.settings import Settings
from workflows.errors import (
    ConfigError,
    Conflict,
    Forbidden,
    InputError,
    NotFound,
    PatchGateError,
)

API = "/api/v1"
TIMEOUT = 30.0  # seconds for one decision (the server answers once it has committed)
# A refused connection sent nothing, so it is safe to try again: a `serve` started a moment
# ago (`patchgate serve &` then a decision, as in the README's tour) is waited for this long.
STARTING = 10.0
MISSING = (
    "PATCHGATE_SERVER_URL and PATCHGATE_TOKEN are required: decisions go through "
    "`patchgate serve` with your personal token (docs/tokens.md)"
)


def _error(status: int, message: str) -> PatchGateError:
    if status == 401:
        return Forbidden(f"the server refused the token: {message}")
    kinds: dict[int, type[PatchGateError]] = {
        400: InputError,
        403: Forbidden,
        404: NotFound,
        409: Conflict,
        413: InputError,
    }
    return kinds.get(status, PatchGateError)(message)


async def call(settings: Settings, method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """One API request; its JSON answer, or the server's refusal raised as PatchGate's error."""
    if settings.server_url is None or settings.token is None:
        raise ConfigError([MISSING])
    url = settings.server_url + API + path
    headers = {"Authorization": f"Bearer {settings.token.get_secret_value()}"}
    payload = {key: value for key, value in body.items() if value is not None}
    try:
        status, text = await _request(method, url, payload, headers)
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise PatchGateError(
            f"cannot reach patchgate serve at {settings.server_url} "
            f"({type(exc).__name__}{f': {exc}' if str(exc) else ''})"
        ) from None
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise PatchGateError(
            f"{settings.server_url} answered HTTP {status} without PatchGate's JSON: "
            "is PATCHGATE_SERVER_URL patchgate serve?"
        )
    if status >= 400:
        raise _error(status, str(data.get("error") or f"HTTP {status}"))
    return data


async def _request(
    method: str, url: str, payload: dict[str, Any], headers: dict[str, str]
) -> tuple[int, str]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STARTING
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT)) as session:
        while True:
            try:
                async with session.request(method, url, json=payload, headers=headers) as answer:
                    return answer.status, await answer.text()
            except aiohttp.ClientConnectorError:
                if loop.time() >= deadline:
                    raise
                await asyncio.sleep(0.25)


async def decide(
    args: argparse.Namespace, settings: Settings, path: str, body: dict[str, Any]
) -> int:
    """POST a decision; print the server's sentence, or its data with ``--json``."""
    answer = await call(settings, "POST", path, body)
    message = str(answer.pop("message", ""))
    if getattr(args, "json", False):
        print_json(answer)
    else:
        print(message)
    return 0
